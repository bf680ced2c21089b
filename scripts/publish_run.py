"""Publish a finished run into docs/runs/latest/: its headline table (``tables/headline.md``, copied as the
workflow wrote it, never retyped) and its Pareto figure (``figures/pareto_time.png``, the README's figure), with
``README.md`` naming the run and its report. The report itself (``docs/runs/<date>-<config>.md``) is written by
hand and never changed afterwards.

    python scripts/publish_run.py RESULTS_DIR REPORT      # e.g. results docs/runs/2026-12-01-default.md
    python scripts/publish_run.py --smoke                 # a temporary run into a temporary docs folder
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what is copied: results-relative source -> name under docs/runs/latest/
FILES = {"tables/headline.md": "headline.md", "figures/pareto_time.png": "pareto_time.png"}


def publish(results: Path, report: Path, latest: Path) -> list[Path]:
    """Copy :data:`FILES` of ``results`` into ``latest`` and write ``latest/README.md`` naming ``report``."""
    results, report = Path(results), Path(report)
    missing = [str(results / f) for f in FILES if not (results / f).is_file()]
    if missing:
        raise FileNotFoundError(f"not a finished run: missing {', '.join(missing)}")
    if not report.is_file():
        raise FileNotFoundError(f"{report}: no such run report (write docs/runs/<date>-<config>.md first)")
    latest.mkdir(parents=True, exist_ok=True)
    written = []
    for src, name in FILES.items():
        shutil.copyfile(results / src, latest / name)
        written.append(latest / name)
    rel = Path("..") / report.name
    (latest / "README.md").write_text(
        f"# The latest published run\n\nRun report: [{report.stem}]({rel.as_posix()}). `headline.md` is its "
        "`tables/headline.md` and `pareto_time.png` its `figures/pareto_time.png`, copied by "
        "`scripts/publish_run.py` (`make publish-run`).\n")
    written.append(latest / "README.md")
    return written


def smoke() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for src in FILES:
            (tmp / "results" / src).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "results/tables/headline.md").write_text("| quantity | student |\n|---|---|\n| x | 1 |\n")
        (tmp / "results/figures/pareto_time.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (tmp / "runs").mkdir()
        (tmp / "runs/2000-01-01-smoke.md").write_text("# smoke\n")
        written = publish(tmp / "results", tmp / "runs/2000-01-01-smoke.md", tmp / "runs/latest")
        assert (tmp / "runs/latest/headline.md").read_text() == (tmp / "results/tables/headline.md").read_text()
        assert "2000-01-01-smoke" in (tmp / "runs/latest/README.md").read_text()
        print(f"smoke: wrote {', '.join(p.name for p in written)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", help="a finished run's results_dir")
    p.add_argument("report", nargs="?", help="its run report, docs/runs/<date>-<config>.md")
    p.add_argument("--latest", default=str(ROOT / "docs" / "runs" / "latest"), help="where to publish")
    p.add_argument("--smoke", action="store_true", help="publish a made-up run into a temporary folder")
    args = p.parse_args(argv)
    if args.smoke:
        return smoke()
    if not (args.results and args.report):
        p.error("RESULTS_DIR and REPORT are required (or --smoke)")
    try:
        for path in publish(Path(args.results), Path(args.report), Path(args.latest)):
            print(path)
    except FileNotFoundError as e:
        print(f"publish_run: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
