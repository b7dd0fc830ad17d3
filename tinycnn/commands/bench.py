"""``tinycnn bench``: run the benchmark suite (``python -m benchmarks``) from a source checkout.

The suite lives in the repository's ``benchmarks/`` folder, not in the installed package (it compares
tinycnn with PyTorch and a plain-NumPy baseline, which the package must not depend on). This command
finds that folder next to the package source and runs the suite in a fresh Python process, passing
the options through; ``tinycnn bench --quick`` is a seconds-long smoke run whose numbers mean nothing.
Results are written to ``benchmarks/results/local/latest.md`` and ``latest.json`` (ignored by git)
unless ``--out`` says otherwise; ``--publish`` writes the tracked ``benchmarks/results/latest.*``
that the README's Speed table quotes (a full run only).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SECTIONS = ("matmul", "train", "layers", "ladder", "whatif", "startup", "memory")


def suite_root() -> Path | None:
    """The source checkout holding ``benchmarks/`` (for an editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "benchmarks" / "__main__.py").is_file() else None


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds); its numbers mean nothing")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=None,
                        help="sections to run (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for latest.md and latest.json (default: benchmarks/results/local, "
                        "ignored by git)")
    parser.add_argument("--publish", action="store_true", help="write the tracked benchmarks/results/latest.md "
                        "and latest.json, which the README's Speed table quotes (a full run only)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    parser.add_argument("--keep-blas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (the suite removes them for its own run)")


def run(args) -> int:
    root = suite_root()
    if root is None:
        print("tinycnn bench: the benchmark suite is not installed with the package; it lives in the "
              "benchmarks/ folder of a source checkout. Clone the repository, `pip install -e .` there, "
              "and run `tinycnn bench` (or `python -m benchmarks` from the checkout).", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "benchmarks"]
    if args.quick:
        argv.append("--quick")
    if args.sections:
        argv += ["--sections", *args.sections]
    if args.out is not None:
        argv += ["--out", str(Path(args.out).resolve())]
    if args.publish:
        argv.append("--publish")
    if args.no_torch:
        argv.append("--no-torch")
    if args.keep_blas_env:
        argv.append("--keep-blas-env")
    return subprocess.call(argv, cwd=root)
