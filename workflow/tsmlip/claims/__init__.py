"""The paper's claims, tested on this run's own numbers (``tables/claims.{csv,md,html}``), and the headline
table (``tables/headline.{csv,md,html}``).

Every row reduces one claim to an **effect** in the claimed direction (positive supports the claim) and a
test from ``scipy.stats`` (see :mod:`.stats`):

- **Accuracy rows** (students vs controls, ablations, RDF, learning speed) compare models of the same
  architecture and seed (same initial weights): each pair gives a relative difference
  ``(baseline - claimed) / baseline``. The **seed is the unit**: a pooled row averages each seed's
  differences over the architectures and tests the per-seed values (one-sample t, ``n`` = seeds); a
  per-architecture row tests that architecture's seeds, and each family of per-architecture rows is
  Holm-corrected.
- **Equivalence rows** (the paper says "comparable" or "only minimally") use two one-sided t tests (TOST) with
  the margin ``aggregate.equivalence_margin``.
- **Born-Again vs the teacher**: Welch's t with the teacher seeds' spread; with one teacher seed there is no
  interval and the row says so.
- **Trend rows**: Pearson's r (force RMSE vs RDF error over kind/architecture means) and the slope of
  log cost on log number of weights (Fig. 5).
- **Cost vs the teacher** (the abstract): the most accurate student architecture against the teacher's, by
  Welch's t on log MD time (timed models, or the timed blocks of one run when each architecture was timed
  once) and on log memory per atom (probed models; with one probe per architecture, the probe's bisection
  bracket).

- **RDF rows against the seed noise floor**: the models' RDF-error differences (absolute, A; seed = unit) are
  tested for equivalence within the floor (TOST, margin = the floor); inside it the row is *indistinguishable
  at this resolution*, never holds or does not hold; otherwise the paired t decides.

Verdicts: *holds* / *does not hold* when the test rejects at ``1 - aggregate.confidence`` in that direction
(for equivalence: inside / outside the margin), else *inconclusive*. The gates (:func:`.gates.gate`) then decide
whether the statistics may speak: a row is *undecided (...)* when a model it compares stopped at the epoch cap
instead of by the stopping rule (``stopped_by`` in models.csv), when its kinds have no budget-checked model,
when a budget check of its kinds and architectures moved the test force RMSE by
``aggregate.budget_check_max_relative_change`` or more, when the doubled-budget errors flip its verdict, or
(RDF rows) when a liquid is not clean. ``verdict_if_converged`` keeps what the statistics say. Every row
carries the **detectable effect**: the smallest true effect this run would have found with probability
``aggregate.power``.

The package, one job per module: :mod:`.verdicts` (the verdict strings and their colours), :mod:`.stats` (the
tests), :mod:`.claim` (one row), :mod:`.rows`, :mod:`.cost` and :mod:`.foundation` (the rows of each family),
:mod:`.gates`, :mod:`.table` (every row, gated), :mod:`.headline`, :mod:`.render` (markdown, HTML, the verdict
rule in words) and :mod:`.cli` (``tsmlip claims``). It reads the tidy tables (``tables/models.csv``) only.
"""
from .cli import main  # noqa: F401  (the ``tsmlip claims`` entry point)
