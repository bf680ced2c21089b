"""What the tidy tables' writer (:mod:`tsmlip.aggregate`) and their readers (claims, figures) share: the names
of the columns they meet on, the Pareto front, and the formatting of a human table (markdown, HTML).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

#: the ``stopped_by`` of a model that the stopping rule (not the epoch cap) ended training of
STOPPED_BY_RULE = "patience"
#: models.csv test errors a budget-check model reports, as ``budget_check_<metric>``
BUDGET_CHECK_METRICS = ("test_force_rmse_eV_A", "test_energy_rmse_eV", "test_energy_per_atom_rmse_eV",
                        "test_atom_energy_rmse_eV")
#: the error whose relative change decides the budget check
BUDGET_CHECK_ERROR = "test_force_rmse_eV_A"


def pareto_front(cost, error) -> np.ndarray:
    """Boolean mask of the non-dominated points when both ``cost`` and ``error`` are minimised.

    A point is dominated when another is no worse in both and strictly better in one. NaN points are never
    on the front; identical points are both on it.
    """
    x = np.asarray(cost, dtype=float)
    y = np.asarray(error, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        front[i] = not others.any()
    return front


#: models.csv's MD time columns: ``md_<engine>_us_per_atom_step`` (wall time, the median block) beside
#: ``md_<engine>_cpu_us_per_atom_step`` (the process's CPU time of the same blocks)
MD_TIME_SUFFIX = "_us_per_atom_step"
MD_CPU_TIME_SUFFIX = "_cpu" + MD_TIME_SUFFIX


def md_time_engines(table) -> list[str]:
    """The MD engines with wall-time columns holding a value in ``table`` (``md_<engine>_us_per_atom_step``)."""
    return sorted(c[len("md_"):-len(MD_TIME_SUFFIX)] for c in table.columns
                  if c.startswith("md_") and c.endswith(MD_TIME_SUFFIX) and not c.endswith(MD_CPU_TIME_SUFFIX)
                  and table[c].notna().any())


def fmt(x, digits: int = 3) -> str:
    """A number for a human table: ``digits`` significant digits, '-' for NaN/None."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}g}"
    return str(x)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of ``df`` (cells formatted with :func:`fmt`)."""
    def cell(v) -> str:
        return fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_HTML_STYLE = (
    "body{font-family:sans-serif;font-size:13px;margin:1em}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    "th{background:#eee;position:sticky;top:0}td.num{text-align:right;white-space:nowrap}"
    "tr:nth-child(even){background:#fafafa}"
)
_NUMBER_RE = re.compile(r"^(-|[+-]?[0-9.]+(e[+-]?[0-9]+)?%?( ± .*)?|\[.*\])$")


def write_html_table(df: pd.DataFrame, path: str | Path, title: str, notes: str = "", nowrap: bool = False,
                     cell_class=None, style: str = "") -> None:
    """A standalone HTML page with ``df`` as a table (for the Snakemake report); ``notes`` is raw HTML.

    Cells are formatted with :func:`fmt`; numbers are right-aligned; ``cell_class`` (text -> CSS class or
    None) classes other cells, ``style`` adds their CSS; ``nowrap`` keeps every cell on one line (wide
    tables of many short values).
    """
    def cell(v) -> str:
        text = fmt(v)
        cls = (cell_class and cell_class(text)) or ("num" if _NUMBER_RE.match(text) else "")
        return f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>\n" for row in df.itertuples(index=False))
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_HTML_STYLE}{style}{'td{white-space:nowrap}' if nowrap else ''}</style></head><body>"
        f"<h2>{html.escape(title)}</h2>{notes}"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}</tbody></table></body></html>\n"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(page)
