"""The `jaxst` command line: encode, compare, fit, evaluate, and the STS-B demo (the README's main job).

Every subcommand lives in its own module with `add_arguments(parser)` and `run(args) -> int`. Errors
the user can fix (a missing file, a bad option, a malformed data row) print one line, `jaxst: error: ...`,
and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxst.cli import compare, demo, encode, evaluate, fit
from jaxst.cli.errors import CliError

COMMANDS = {
    "encode": encode,
    "compare": compare,
    "fit": fit,
    "evaluate": evaluate,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxst", description="Sentence embeddings in pure JAX.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        sub = commands.add_parser(name, help=doc, description=module.__doc__)
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except CliError as error:
        print(f"jaxst {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
