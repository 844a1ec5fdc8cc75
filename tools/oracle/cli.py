"""The command line of tools/dynamic_oracle.py: --bin, --cases, --seed, --device, --mutate,
--only and --keep; runs the cases in turn, prints each disagreement and a summary, exits 1 if any
case disagrees."""
import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from . import policy
from .cases import STATS, case
from .draw import LEVEL_SETS


def keep_case(keep, k, tmp):
    """Copies the files of disagreeing case `k` (its model and input in `tmp`) to
    `keep`/case_<k>/, when `--keep` names a folder."""
    if not keep:
        return
    to = Path(keep) / f"case_{k}"
    to.mkdir(parents=True, exist_ok=True)
    for f in Path(tmp).iterdir():
        if f.is_file():
            shutil.copy(f, to / f.name)


def main():
    ap = argparse.ArgumentParser(description=PACKAGE_DOC.split("\n")[0])
    ap.add_argument("--bin", default="target/release/lstm-dse")
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mutate", default="", choices=["", "lt", "prevstep"])
    ap.add_argument("--only", default="", help="level sets containing this text only")
    ap.add_argument("--keep", default="", help="copy a disagreeing case's model and input here")
    a = ap.parse_args()
    LEVEL_SETS[:] = [ls for ls in LEVEL_SETS if a.only in ls[0]]
    policy.MUTATE = a.mutate
    rng, bad = random.Random(a.seed), 0
    STATS.update(policies=0, mixed=0, rows=0)
    with tempfile.TemporaryDirectory() as t:
        for k in range(a.cases):
            what, problems = case(rng, Path(t), a.bin, a.device)
            if problems:
                bad += 1
                print(f"case {k} ({what}):", *problems[:4], sep="\n  ")
                keep_case(a.keep, k, t)
    print(f"{a.cases - bad} of {a.cases} cases agree ({STATS['policies']} policies, "
          f"{STATS['mixed']} of them running more than one level; {STATS['rows']} trace rows)")
    sys.exit(1 if bad else 0)
