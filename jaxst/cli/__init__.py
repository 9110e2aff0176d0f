"""The `jaxst` command line: encode, compare, fit, evaluate, and the STS-B demo (the README's main job).

Every subcommand lives in its own module with `add_arguments(parser)` and `run(args) -> int`. Errors
the user can fix (a missing file, a bad option, a malformed data row) print one line,
`jaxst COMMAND: error: ...`, and exit with status 2, never a traceback nor a usage block: option errors
through argparse (SystemExit(2)), the rest as a `CliError` that `main` prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxst.cli import compare, demo, encode, evaluate, fit
from jaxst.cli.errors import CliError, one_line
from jaxst.cli.options import OneLineParser

COMMANDS = {
    "encode": encode,
    "compare": compare,
    "fit": fit,
    "evaluate": evaluate,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    """The `jaxst` parser with one subparser per command (every parser's errors are one line)."""
    parser = OneLineParser(prog="jaxst", description="Sentence embeddings in pure JAX.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        sub = commands.add_parser(name, help=doc, description=module.__doc__)
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit status (2 after printing a user error on one line)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except CliError as error:
        print(f"jaxst {args.command}: error: {one_line(str(error))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
