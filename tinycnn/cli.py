"""The ``tinycnn`` command line: ``tinycnn <command> [options]``.

Each command lives in ``tinycnn/commands/<name>.py`` and defines ``add_arguments(parser)`` and
``run(args) -> int``. This file only dispatches; commands are imported lazily so that
``tinycnn --help`` stays fast.

Two ways a command can end that are not errors of the command, handled here for all of them:

* Ctrl-C (KeyboardInterrupt) anywhere a command does not catch it itself -- importing the command,
  loading a dataset, compiling kernels: one line on stderr, exit status 130 (128 + SIGINT), no
  traceback. (``tinycnn train`` catches it during training itself, to keep its last checkpoint.)
  This file and the package's ``__init__`` import only the standard library, so NumPy and Numba
  (a second or two) load inside ``main``: a Ctrl-C while they load is handled here too, for the
  console script and for ``python -m tinycnn`` alike.
* The reader of stdout going away (``tinycnn evaluate ... | head``): the BrokenPipeError is
  swallowed, stdout is pointed at the null device so that the interpreter's final flush is quiet
  too, and the exit status is 141 (128 + SIGPIPE, what a process killed by the signal reports).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

# name -> one-line help; each is the module tinycnn.commands.<name>.
COMMANDS = {
    "train": "train a CNN on a dataset and report its accuracy",
    "evaluate": "evaluate a saved checkpoint on a test set",
    "predict": "classify image files with a saved checkpoint",
    "gradcheck": "check every layer's backward pass against finite differences",
    "bench": "run the speed benchmarks",
    "export": "write a saved network as an ONNX graph",
}


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__
    parser = argparse.ArgumentParser(prog="tinycnn", description="A CNN engine you can read.")
    parser.add_argument("--version", action="version", version=f"tinycnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=f"tinycnn.commands.{name}")
        importlib.import_module(f"tinycnn.commands.{name}").add_arguments(p)
    return parser


def _dispatch(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


def _silence_stdout() -> None:
    """After a broken pipe: send whatever is still buffered for stdout to the null device."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):      # stdout is not a real file (e.g. captured)
        pass


def main(argv=None) -> int:
    try:
        try:
            code = _dispatch(argv)
        except SystemExit:                             # argparse's --help and usage errors
            sys.stdout.flush()
            raise
        sys.stdout.flush()                             # a closed pipe shows here, while it can be caught
        return code
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as err:
        if _caused_by_interrupt(err):    # Numba reports a Ctrl-C inside a callback as a SystemError
            return _interrupted()
        raise


def _interrupted() -> int:
    print("\ntinycnn: interrupted (Ctrl-C)", file=sys.stderr)
    return EXIT_INTERRUPTED


def _caused_by_interrupt(err: BaseException) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
