#!/usr/bin/env python
"""Compare the tables of two results folders cell by cell (``<results>/tables/*.csv``).

    python scripts/compare_tables.py RESULTS_A RESULTS_B [--noise RESULTS_A2] [--ignore REGEX]

Every CSV under ``tables/`` of either folder is read as text (no float parsing: a cell is equal only when it is
written the same). Columns whose name matches ``--ignore`` (default: wall times, timings, memory and the
machine, :data:`TIMING`) are left out. With ``--noise``, a second run of A's tree, the cells that differ between
A and A2 are left out too (they vary from run to run: e.g. a claims row built on timings) and counted apart. A
cell holding the results folder's own path compares as ``<results>``.

Prints one row per table (rows, columns compared, cells compared, cells differing, cells left out as noise) and
the first differing cells; exits 1 when any compared cell differs or a table is missing on one side, else 0.
``--smoke``: builds three tiny folders (a timing column and a noisy cell that differ, a science cell that does
not) and checks both verdicts.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from pathlib import Path

#: columns left out by default: times, rates, memory, the machine and what is derived from them only
TIMING = (r"(wall|time|_s$|_s_|us_per|ns_per|ms_per|steps_per|per_s\b|per_day|memory|bytes|max_atoms|device_name|"
          r"hardware|first_failure|host_limited|capped|timed_out|repeats_done|speedup|cost)")


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV under ``<results>/tables/``, the results folder's own path in a cell written
    ``<results>`` (two folders of one tree differ there only by where they were written)."""
    results = str(path.resolve().parents[1])
    with open(path, newline="") as fh:
        rows = [[cell.replace(results, "<results>") for cell in row] for row in csv.reader(fh)]
    return (rows[0], rows[1:]) if rows else ([], [])


def cell_diffs(a: Path, b: Path, ignore: re.Pattern) -> tuple[dict, int, int, list[str]]:
    """(differing cells {(row, column): (a, b)}, rows, compared columns, problems) of two CSVs."""
    ha, ra = read_table(a)
    hb, rb = read_table(b)
    problems = []
    if ha != hb:
        problems.append(f"columns differ: only in A {sorted(set(ha) - set(hb))}, only in B {sorted(set(hb) - set(ha))}")
    if len(ra) != len(rb):
        problems.append(f"rows differ: {len(ra)} vs {len(rb)}")
    cols = [c for c in ha if c in hb and not ignore.search(c)]
    ia, ib = {c: ha.index(c) for c in cols}, {c: hb.index(c) for c in cols}
    diffs = {}
    for i, (x, y) in enumerate(zip(ra, rb)):
        for c in cols:
            va, vb = x[ia[c]], y[ib[c]]
            if va != vb:
                diffs[(i, c)] = (va, vb)
    return diffs, min(len(ra), len(rb)), len(cols), problems


def compare(dir_a: Path, dir_b: Path, noise: Path | None, ignore: str, show: int = 12, out=sys.stdout) -> int:
    rx = re.compile(ignore)
    ta, tb = Path(dir_a) / "tables", Path(dir_b) / "tables"
    names = sorted({p.name for p in ta.glob("*.csv")} | {p.name for p in tb.glob("*.csv")})
    bad = 0
    print("| table | rows | columns compared | cells compared | cells differing | left out as noise |", file=out)
    print("|---|---|---|---|---|---|", file=out)
    listed = []
    for name in names:
        if not (ta / name).is_file() or not (tb / name).is_file():
            print(f"| {name} | missing in {'A' if not (ta / name).is_file() else 'B'} | | | | |", file=out)
            bad += 1
            continue
        diffs, n_rows, n_cols, problems = cell_diffs(ta / name, tb / name, rx)
        noisy = set()
        if noise is not None and (Path(noise) / "tables" / name).is_file():
            noisy = set(cell_diffs(ta / name, Path(noise) / "tables" / name, rx)[0])
        real = {k: v for k, v in diffs.items() if k not in noisy}
        print(f"| {name} | {n_rows} | {n_cols} | {n_rows * n_cols - len(noisy)} | {len(real)} | {len(noisy)} |",
              file=out)
        bad += bool(real) + len(problems)
        listed += [f"{name}: {p}" for p in problems]
        listed += [f"{name} row {r + 1} {c}: {va!r} vs {vb!r}" for (r, c), (va, vb) in sorted(real.items())]
    for line in listed[:show]:
        print("  " + line, file=out)
    if len(listed) > show:
        print(f"  ... and {len(listed) - show} more", file=out)
    print("equal" if not bad else "DIFFERENT", file=out)
    return 1 if bad else 0


def _smoke() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        def folder(name, rmse, wall, p):
            d = Path(tmp) / name / "tables"
            d.mkdir(parents=True)
            (d / "models.csv").write_text(f"model_id,test_force_rmse_eV_A,wall_time_s\nteacher,{rmse},{wall}\n")
            (d / "claims.csv").write_text(f"claim,p_value\nfaster,{p}\n")
            return d.parent
        a, a2 = folder("a", "0.10", "3.1", "0.01"), folder("a2", "0.10", "2.9", "0.02")
        same, other = folder("b", "0.10", "4.0", "0.03"), folder("c", "0.11", "4.0", "0.01")
        rc_same = compare(a, same, a2, TIMING)
        rc_other = compare(a, other, a2, TIMING)
    ok = rc_same == 0 and rc_other == 1
    print(f"smoke: same science -> {rc_same}, other science -> {rc_other}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", nargs="?", type=Path)
    p.add_argument("b", nargs="?", type=Path)
    p.add_argument("--noise", type=Path, help="a second run of A's tree: the cells that differ from A are left out")
    p.add_argument("--ignore", default=TIMING, help="columns left out (a regex; default: timings, memory, machine)")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        return _smoke()
    if args.a is None or args.b is None:
        p.error("give two results folders (or --smoke)")
    return compare(args.a, args.b, args.noise, args.ignore)


if __name__ == "__main__":
    sys.exit(main())
