"""`jaxst --help` and `import jaxst` stay light: JAX, transformers and torch load only when a command runs
or a name that needs them is used."""

import subprocess
import sys

HEAVY = ("jax", "transformers", "torch", "flax", "optax")


def modules_loaded_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return completed.stdout.split()


def test_help_of_every_command_loads_no_heavy_module():
    code = (
        "from jaxst.cli import COMMANDS, build_parser\n"
        "import contextlib, io\n"
        "for argv in [['--help']] + [[name, '--help'] for name in COMMANDS]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        build_parser().parse_args(argv)"
    )
    assert modules_loaded_after(code) == []


def test_import_jaxst_defers_until_a_name_is_used():
    assert modules_loaded_after("import jaxst") == []
    assert "jax" in modules_loaded_after("import jaxst\njaxst.SentenceTransformer")


def test_unknown_attribute_is_an_attribute_error():
    code = "import jaxst\ntry:\n    jaxst.NoSuchThing\nexcept AttributeError as e:\n    print(e)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "has no attribute 'NoSuchThing'" in completed.stdout
