"""The ``tinycnn`` command line: ``tinycnn <command> [options]``.

Each command lives in ``tinycnn/commands/<name>.py`` and defines ``add_arguments(parser)`` and
``run(args) -> int``. This file only dispatches; commands are imported lazily so that
``tinycnn --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> one-line help. A command module that is not there yet is simply not offered.
COMMANDS = {
    "train": "train a CNN on a dataset and report its accuracy",
    "evaluate": "evaluate a saved checkpoint on a test set",
    "predict": "classify image files with a saved checkpoint",
    "gradcheck": "check every layer's backward pass against finite differences",
    "bench": "run the speed benchmarks",
}


def _available():
    for name, help_text in COMMANDS.items():
        try:
            spec = importlib.util.find_spec(f"tinycnn.commands.{name}")
        except ImportError:
            spec = None
        if spec is not None:
            yield name, help_text


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__
    parser = argparse.ArgumentParser(prog="tinycnn", description="A CNN engine you can read.")
    parser.add_argument("--version", action="version", version=f"tinycnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in _available():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=f"tinycnn.commands.{name}")
        importlib.import_module(f"tinycnn.commands.{name}").add_arguments(p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
