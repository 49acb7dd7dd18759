"""The fuzz tests (``tests/test_fuzz_*.py``) at a larger scale, with fresh random examples on every run.

Runs them under the Hypothesis profile "bench" (``tests/conftest.py``): ``--examples`` examples per pure target,
a share of that for the targets that write to the database; then prints the cases run per target and the
refusals per catalogued kind, and the rows left in each table of the last test's database. Exits non-zero when
any test fails (a crash, an uncatalogued refusal, a broken invariant of the database dump).

Uses the embedded PostgreSQL and Redis, like the test suite, unless ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL``
name servers::

    .venv/bin/python bench/fuzz.py --examples 20000
    .venv/bin/python bench/fuzz.py --examples 2000 -k inbound     # one file's targets
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from tests import fuzzing  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000, help="examples per pure target (default 20000)")
    parser.add_argument("-k", default="", help="only the tests whose names match (pytest -k)")
    args = parser.parse_args()
    os.environ["WORKBENCH_FUZZ_EXAMPLES"] = str(args.examples)
    files = sorted(str(p) for p in (ROOT / "tests").glob("test_fuzz_*.py"))
    started = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--hypothesis-profile=bench", "--hypothesis-show-statistics",
                        *(["-k", args.k] if args.k else []), *files])
    elapsed = time.monotonic() - started
    print(f"\n{sum(fuzzing.CASES.values()):,} cases in {elapsed:.0f} s ({args.examples:,} examples per pure target)")
    print(f"{'target':<34} {'cases':>9} {'refused':>9}  refusals by catalogued kind")
    for target, cases in sorted(fuzzing.CASES.items()):
        kinds = sorted(((n, kind) for (t, kind), n in fuzzing.REFUSALS.items() if t == target), reverse=True)
        shown = ", ".join(f"{kind} {n:,}" for n, kind in kinds[:6]) + (f", +{len(kinds) - 6} more"
                                                                       if len(kinds) > 6 else "")
        print(f"{target:<34} {cases:>9,} {sum(n for n, _ in kinds):>9,}  {shown}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
