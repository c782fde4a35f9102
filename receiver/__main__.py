"""Command line of the receiver: ``python -m receiver inspect FILE.fvc``."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m receiver", description="Talking-head codec: receiving side.")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="decode an .fvc packet file and summarize it")
    inspect.add_argument("file", help=".fvc file written by `python -m sender encode`")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        from .inspect import inspect_file

        try:
            report = inspect_file(args.file)
        except FileNotFoundError:
            print(f"error: {args.file}: no such file", file=sys.stderr)
            return 1
        print("\n".join(report.lines()))
        return 1 if report.file_error or report.bad_packets else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
