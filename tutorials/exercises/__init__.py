"""Automatic checks for the exercises at the end of each tutorial.

``exNN.py`` holds the checks of tutorial NN. Each check takes the learner's function (or class), runs
it on cases whose right answer the check computes another way, prints one line, ``Exercise N.k: OK``
or ``Exercise N.k: NOT OK`` followed by what differs, and returns True or False. A function that still
raises ``NotImplementedError`` (the tutorials' starting point) is reported as not attempted yet.
``tutorials/solutions/solutions_NN.py`` holds reference solutions; the test suite runs them through the
same checks, and also checks that each check rejects a wrong answer.
"""
from __future__ import annotations

import functools
import traceback


def exercise(label: str):
    """Decorate a check ``f(answer) -> list of problems``: print OK / NOT OK, return True / False."""
    def wrap(check):
        @functools.wraps(check)
        def run(answer, *, quiet: bool = False) -> bool:
            try:
                problems = check(answer)
            except NotImplementedError:
                problems = ["not attempted yet: replace `raise NotImplementedError` with your code"]
            except Exception as err:                     # the learner's code failed: say where
                where = traceback.extract_tb(err.__traceback__)[-1]
                problems = [f"your code raised {type(err).__name__}: {err} "
                            f"(line {where.lineno} of {where.filename.rsplit('/', 1)[-1]})"]
            if not quiet:
                if problems:
                    print(f"Exercise {label}: NOT OK")
                    for p in problems[:5]:
                        print(f"  - {p}")
                else:
                    print(f"Exercise {label}: OK")
            return not problems
        run.label = label
        return run
    return wrap
