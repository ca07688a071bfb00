"""Train the studies behind the Claims page and export their small artifacts.

    .venv/bin/python tools/run_claims.py                 # every study of the cpu profile
    .venv/bin/python tools/run_claims.py --only "search" # a subset, by regular expression

Runs go to ``$XCF_RUNS_DIR`` (default ``runs/<profile>``) and resume if killed; each
finished run is copied without checkpoints to ``notebooks/results/<profile>/``, which
the book reads.  Runs train one after another: the machine has 2 cores.
"""
import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads: 5x slower here
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xcf import claims  # noqa: E402
from xcf.profiles import profile_knobs  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu", help="profile whose 11_claims section to run")
    p.add_argument("--only", default=None, help="regular expression on study names")
    args = p.parse_args()
    P = profile_knobs("11_claims", args.profile, ROOT / "notebooks" / "params")
    if "train" not in P:
        sys.exit(f"profile {args.profile!r} has no studies in its 11_claims section; use --profile cpu")
    os.environ.setdefault("XCF_RUNS_DIR", str(ROOT / "runs" / args.profile))
    only = re.compile(args.only).search if args.only else None
    claims.run_studies(P, export_to=ROOT / "notebooks" / "results" / args.profile, only=only)


if __name__ == "__main__":
    main()
