"""Compare every Parquet table of two results folders column by column (a refactor must change no number).

    .venv/bin/python tools/compare_results.py OLD/results NEW/results [--rename stats=norm_variance ...]

Tables under hidden/, corpus/, train/ and parts/ are skipped. Prints each numeric column whose largest
relative difference exceeds --rtol and each other column that differs, then the worst difference;
exits 1 if any table is missing or differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

SKIP = {"hidden", "corpus", "train", "parts"}


def relative_difference(a: pl.Series, b: pl.Series) -> float:
    """Largest |a - b| / |a| over entries where not both are NaN (inf if a NaN meets a number)."""
    x, y = a.cast(pl.Float64).to_numpy(), b.cast(pl.Float64).to_numpy()
    both = np.isnan(x) & np.isnan(y)
    diff = np.abs(x - y)[~both] / np.maximum(np.abs(x[~both]), 1e-300)
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rename", nargs="*", default=[], help="old=new path prefixes, e.g. stats=norm_variance")
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args()
    renames = dict(item.split("=", 1) for item in args.rename)
    worst, columns, failed = 0.0, 0, False
    for path in sorted(args.old.rglob("*.parquet")):
        relative = path.relative_to(args.old).as_posix()
        if SKIP & set(Path(relative).parts):
            continue
        for old, new in renames.items():
            relative = new + relative[len(old) :] if relative.startswith(old) else relative
        other = args.new / relative
        if not other.exists():
            print(f"missing: {relative}")
            failed = True
            continue
        a, b = pl.read_parquet(path), pl.read_parquet(other)
        if a.height != b.height or set(a.columns) - set(b.columns):
            print(f"shape or columns differ: {relative}")
            failed = True
            continue
        for column in a.columns:
            if a[column].dtype.is_numeric():
                diff = relative_difference(a[column], b[column])
                worst, columns = max(worst, diff), columns + 1
                if diff > args.rtol:
                    print(f"{relative} {column}: relative difference {diff:.3g}")
                    failed = True
            elif a[column].to_list() != b[column].to_list():
                print(f"{relative} {column}: values differ")
                failed = True
    print(f"{columns} numeric columns compared, worst relative difference {worst:.3g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
