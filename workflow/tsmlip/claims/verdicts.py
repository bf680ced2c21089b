"""The verdicts a claims row can carry, and their colours in the HTML tables (built from this one list)."""
from __future__ import annotations

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
#: an RDF row whose models' RDF-error differences lie inside the seed noise floor (equivalence test)
INDISTINGUISHABLE = "indistinguishable at this resolution"
#: every undecided verdict starts with this (the HTML colours them alike)
UNDECIDED_PREFIX = "undecided ("
UNDECIDED = "undecided (unconverged)"
UNDECIDED_NO_BUDGET_CHECK = "undecided (no budget check)"
UNDECIDED_BUDGET_MOVED = "undecided (budget check moved the error)"
UNDECIDED_BUDGET_FLIPPED = "undecided (budget check flipped the verdict)"
UNDECIDED_LIQUID = "undecided (liquid not clean)"
#: every verdict a claims row can carry: the statistics' (decided) and the gates' (undecided)
DECIDED_VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, INDISTINGUISHABLE)
UNDECIDED_VERDICTS = (UNDECIDED, UNDECIDED_NO_BUDGET_CHECK, UNDECIDED_BUDGET_MOVED, UNDECIDED_BUDGET_FLIPPED,
                      UNDECIDED_LIQUID)
VERDICTS = DECIDED_VERDICTS + UNDECIDED_VERDICTS
#: CSS class and background colour of each decided verdict's cell in the HTML tables
VERDICT_CSS = {HOLDS: ("holds", "#d9f2d9"), FAILS: ("does-not-hold", "#f8d7d7"),
               INCONCLUSIVE: ("inconclusive", "#fff3cd"), INDISTINGUISHABLE: ("indistinguishable", "#d6e9f8")}
#: the same for every ``undecided (...)`` verdict
UNDECIDED_CSS = ("undecided", "#e2e3e5")
#: the CSS of the verdict cells (:func:`tsmlip.tables.write_html_table`'s ``style``)
VERDICT_STYLE = "".join(f"td.{cls}{{background:{colour}}}" for cls, colour in (*VERDICT_CSS.values(), UNDECIDED_CSS))


def verdict_css_class(text: str) -> str | None:
    """The HTML class of a verdict cell: its own for a decided verdict, ``undecided`` for every
    ``undecided (...)`` one, None for any other text."""
    if text in VERDICT_CSS:
        return VERDICT_CSS[text][0]
    return UNDECIDED_CSS[0] if str(text).startswith(UNDECIDED_PREFIX) else None
