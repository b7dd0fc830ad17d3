"""Measure the errors the gradient proofs achieve, per layer, tensor and dtype (not a test).

    python tests/measure_gradient_errors.py [--examples 300]

Runs every property of tests/test_gradients.py on ``--examples`` hypothesis-drawn configurations each
(derandomized: the same configurations on every run) and prints, for each layer and tensor, the
largest value seen of:
* float64 finite differences: norm-wise relative error (must stay < 1e-7);
* float64 adjoint: |<Jv,u> - <v,J^T u>| / Cauchy-Schwarz scale (must stay < 1e-7);
* float32 |diff| / bound: the worst element's distance from float64 as a fraction of its derived
  bound (must stay <= 1; small values mean the bound is loose, not that it was tuned);
* float32 max|diff| / max|ref|: the same distance relative to the tensor's largest entry.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numba  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args(argv)
    settings.register_profile("measure", max_examples=args.examples, deadline=None, derandomize=True,
                              database=None, suppress_health_check=list(HealthCheck))
    settings.load_profile("measure")
    import test_gradients as T  # after the profile: @given reads it at import
    numba.set_num_threads(1)
    T.RECORD = {}
    tests = [getattr(T, name) for name in dir(T) if name.startswith("test_")]
    start = time.perf_counter()
    for test in tests:
        test()
    print(f"{len(tests)} properties x {args.examples} examples in {time.perf_counter() - start:.0f} s\n")
    print(f"{'layer':<22}{'check':<32}{'tensor':<30}{'largest':>10}")
    for (layer, check, tensor), value in sorted(T.RECORD.items()):
        print(f"{layer:<22}{check:<32}{tensor:<30}{value:>10.2e}")


if __name__ == "__main__":
    main()
