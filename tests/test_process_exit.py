"""A process that made a model freezes the objects alive at exit, so CPython's final garbage collections skip
them; data left in an unclosed file still reaches the disk; JAXST_FAST_EXIT=0 keeps the usual exit."""

import os
import subprocess
import sys

# Registered before anything of jaxst, so it runs after jaxst's exit handler (atexit runs last-in first-out).
SCRIPT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
unclosed = open(sys.argv[2], "w")
unclosed.write("written before exit, never closed")
if sys.argv[1] == "model":
    import jaxst
    jaxst.SentenceTransformer(sys.argv[3])
else:
    from jaxst.process_exit import freeze_objects_at_exit
    freeze_objects_at_exit()
"""


def run(*argv: str, **environment: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAXST_FAST_EXIT"} | environment
    result = subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_a_process_that_made_a_model_freezes_its_objects_at_exit_and_flushes_files(tiny_folder, tmp_path):
    unclosed = tmp_path / "unclosed.txt"
    assert run("model", str(unclosed), str(tiny_folder)) == "frozen at exit: True"
    assert unclosed.read_text() == "written before exit, never closed"


def test_the_environment_variable_keeps_the_usual_exit(tmp_path):
    assert run("function", str(tmp_path / "a.txt")) == "frozen at exit: True"
    assert run("function", str(tmp_path / "b.txt"), JAXST_FAST_EXIT="0") == "frozen at exit: False"
