"""The statistics behind the claims table: every test and interval comes from ``scipy.stats``.

Each function reduces one comparison to a :class:`Test`: the effect (in the claim's direction, so a positive
value supports the claim), its interval, a p-value, the verdict and the **detectable effect**: the smallest
true effect that a run with this ``n`` and this spread would have found with probability ``power`` at the
configured confidence (for equivalence tests: the smallest margin it could have shown equivalence within,
were the true effect zero). It tells whether an inconclusive row needs more seeds or a larger effect.

- :func:`one_sample`: ``stats.ttest_1samp`` on one value per unit (per seed), two-sided against a threshold.
- :func:`two_sample`: Welch's ``stats.ttest_ind(equal_var=False)``, on the relative scale of the baseline's
  mean, or on raw values (e.g. logarithms of times).
- :func:`equivalence_one_sample`, :func:`equivalence_two_sample`: two one-sided tests (TOST) with a margin.
- :func:`correlation`: ``stats.pearsonr`` with its Fisher-z interval.
- :func:`slope`: ``stats.linregress`` with a t interval of the slope.
- :func:`holm`: Holm's step-down adjustment of a family's p-values.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .verdicts import FAILS, HOLDS, INCONCLUSIVE

NAN = math.nan


@dataclass
class Test:
    """The outcome of one statistical comparison (effects in the claim's direction)."""

    name: str
    effect: float = NAN
    spread: float = NAN  # sample std of the unit values (one-sample) or standard error (two-sample, slope)
    n: int = 0
    df: float = NAN
    se: float = NAN  # standard error of the effect
    ci_level: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    p_value: float = NAN  # superiority: two-sided against the threshold; equivalence: TOST (max of the two)
    p_adjusted: float = NAN  # Holm-adjusted within its family
    detectable: float = NAN
    verdict: str = INCONCLUSIVE
    note: str = ""


def finite(x) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


@contextmanager
def _quiet():
    """Silence scipy's warnings about nearly constant data (the tests still return numbers or NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def directional_verdict(p: float, effect: float, threshold: float, alpha: float) -> str:
    """holds / does not hold when a two-sided test rejects ``effect == threshold`` at ``alpha``."""
    if not (np.isfinite(p) and np.isfinite(effect)) or p >= alpha:
        return INCONCLUSIVE
    return HOLDS if effect > threshold else FAILS


def detectable_shift(se: float, df: float, alpha: float, power: float) -> float:
    """Smallest true shift found with probability ``power`` by a two-sided t test at level ``alpha``.

    Power from the noncentral t distribution (``stats.nct``): the noncentrality ``lambda`` at which the test
    rejects with probability ``power`` depends on ``df``, ``alpha`` and ``power`` only; the shift is
    ``lambda * se``.
    """
    if not (np.isfinite(se) and se >= 0 and np.isfinite(df) and df > 0):
        return NAN
    if se == 0:  # no spread at all: any shift would be found
        return 0.0
    tc = stats.t.ppf(1 - alpha / 2, df)

    def gap(nc: float) -> float:
        upper = stats.nct.sf(tc, df, nc)
        lower = np.nan_to_num(stats.nct.cdf(-tc, df, nc), nan=0.0)  # the far tail can underflow to NaN
        return float(upper + lower) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
        if hi > 1e4:
            return NAN
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-8)) * se


def detectable_margin(se: float, df: float, alpha: float, power: float) -> float:
    """Smallest equivalence margin that two one-sided t tests at ``alpha`` would confirm with probability
    ``power`` when the true effect is zero (t approximation: se * (t_{1-alpha} + t_{(1+power)/2}))."""
    if not (np.isfinite(se) and se >= 0 and np.isfinite(df) and df > 0):
        return NAN
    return float(se * (stats.t.ppf(1 - alpha, df) + stats.t.ppf((1 + power) / 2, df)))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, NAN)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def holm_levels(pvalues, confidence: float) -> np.ndarray:
    """The confidence level of each member's step in Holm's procedure: 1 - alpha / (m - rank)."""
    p = np.asarray(pvalues, dtype=float)
    alpha = 1 - confidence
    out = np.full(p.shape, confidence)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        out[i] = 1 - alpha / (m - rank)
    return out


def apply_holm(tests: list[Test], threshold: float, confidence: float, power: float) -> list[Test]:
    """Holm across a family of t-based superiority tests: verdicts from the adjusted p-values; each
    member's interval and detectable effect at the level of its step (Bonferroni for the smallest p)."""
    if len(tests) < 2:
        return tests
    p = [t.p_value for t in tests]
    adjusted = holm(p)
    levels = holm_levels(p, confidence)
    alpha = 1 - confidence
    for t, pa, level in zip(tests, adjusted, levels):
        t.p_adjusted = float(pa)
        if np.isfinite(t.se) and np.isfinite(t.df) and t.df > 0:
            t.ci_level = float(level)
            t.ci_low, t.ci_high = (float(v) for v in stats.t.interval(level, t.df, loc=t.effect, scale=t.se))
            t.detectable = detectable_shift(t.se, t.df, 1 - level, power)
        t.verdict = directional_verdict(pa, t.effect, threshold, alpha)
        t.note = (t.note + "; " if t.note else "") + f"Holm over {len(tests)} architectures"
    return tests


def one_sample(x, threshold: float, confidence: float, power: float, name: str) -> Test:
    """One value per unit (e.g. per seed): is their mean different from ``threshold``? (``stats.ttest_1samp``)"""
    x = finite(x)
    n = int(x.size)
    if n == 0:
        return Test(name, note="no values")
    mean = float(x.mean())
    if n < 2:
        return Test(name, effect=mean, n=1, note="one value: no spread, no interval")
    alpha = 1 - confidence
    with _quiet():
        res = stats.ttest_1samp(x, popmean=threshold)
        ci = stats.ttest_1samp(x, popmean=0.0).confidence_interval(confidence)
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    p = float(res.pvalue) if np.isfinite(res.pvalue) else NAN
    return Test(name, effect=mean, spread=sd, n=n, df=n - 1, se=se, ci_level=confidence, ci_low=float(ci.low),
                ci_high=float(ci.high), p_value=p, detectable=detectable_shift(se, n - 1, alpha, power),
                verdict=directional_verdict(p, mean, threshold, alpha))


def _scaled(baseline, claimed, relative: bool):
    b, c = finite(baseline), finite(claimed)
    scale = float(b.mean()) if (relative and b.size and b.mean() != 0) else 1.0
    return b / scale, c / scale, scale


def _no_interval_two_sample(b, c, effect, alpha, power, name, note) -> Test:
    """One side has a single value: no Welch interval. The detectable effect assumes both sides share the
    other side's spread (pooled t, df = nb + nc - 2)."""
    nb, nc = b.size, c.size
    many = b if nb > 1 else c if nc > 1 else None
    det = NAN
    if many is not None and nb + nc - 2 > 0:
        se = float(many.std(ddof=1)) * math.sqrt(1 / nb + 1 / nc)
        det = detectable_shift(se, nb + nc - 2, alpha, power)
    return Test(name, effect=effect, n=int(nc), detectable=det, note=note)


def two_sample(baseline, claimed, threshold: float, confidence: float, power: float, name: str,
               relative: bool = True, single_note: str = "") -> Test:
    """Welch's t (``stats.ttest_ind(equal_var=False)``) of ``mean(baseline) - mean(claimed)``.

    ``relative``: both groups divided by the baseline's mean, so the effect is ``(mb - mc) / mb`` (the
    baseline mean's own uncertainty is not propagated). ``n`` is the claimed group's size. With one value on
    a side there is no interval (``single_note`` says why).
    """
    b, c, _ = _scaled(baseline, claimed, relative)
    nb, nc = b.size, c.size
    if nb == 0 or nc == 0:
        return Test(name, n=int(nc), note="no values on one side")
    effect = float(b.mean() - c.mean())
    alpha = 1 - confidence
    if nb < 2 or nc < 2:
        return _no_interval_two_sample(b, c, effect, alpha, power, name,
                                       single_note or "one value on a side: no spread, no interval")
    with _quiet():
        res = stats.ttest_ind(b - threshold, c, equal_var=False)
        ci = stats.ttest_ind(b, c, equal_var=False).confidence_interval(confidence)
    se = math.sqrt(b.var(ddof=1) / nb + c.var(ddof=1) / nc)
    df = float(res.df)
    p = float(res.pvalue) if np.isfinite(res.pvalue) else NAN
    return Test(name, effect=effect, spread=se, n=int(nc), df=df, se=se, ci_level=confidence, ci_low=float(ci.low),
                ci_high=float(ci.high), p_value=p, detectable=detectable_shift(se, df, alpha, power),
                verdict=directional_verdict(p, effect, threshold, alpha))


def _equivalence_verdict(p_tost: float, p_outside: float, alpha: float) -> str:
    if np.isfinite(p_tost) and p_tost < alpha:
        return HOLDS
    if np.isfinite(p_outside) and p_outside < alpha:
        return FAILS
    return INCONCLUSIVE


def equivalence_one_sample(x, margin: float, confidence: float, power: float, name: str) -> Test:
    """Two one-sided t tests (TOST): is the mean within ``(-margin, +margin)``?

    holds: both ``H0: mean <= -margin`` and ``H0: mean >= +margin`` are rejected at alpha = 1 - confidence
    (the 1 - 2 alpha interval lies inside the margins); does not hold: the mean lies significantly outside
    one margin (the interval lies entirely beyond it); inconclusive otherwise.
    """
    x = finite(x)
    n = int(x.size)
    if n < 2:
        return Test(name, effect=float(x.mean()) if n else NAN, n=n, note="fewer than two values: no interval")
    alpha = 1 - confidence
    with _quiet():
        p_low = stats.ttest_1samp(x, -margin, alternative="greater").pvalue
        p_high = stats.ttest_1samp(x, margin, alternative="less").pvalue
        p_above = stats.ttest_1samp(x, margin, alternative="greater").pvalue
        p_below = stats.ttest_1samp(x, -margin, alternative="less").pvalue
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(1 - 2 * alpha)
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    p_tost = float(max(p_low, p_high))
    return Test(name, effect=float(x.mean()), spread=sd, n=n, df=n - 1, se=se, ci_level=1 - 2 * alpha,
                ci_low=float(ci.low), ci_high=float(ci.high), p_value=p_tost,
                detectable=detectable_margin(se, n - 1, alpha, power),
                verdict=_equivalence_verdict(p_tost, float(min(p_above, p_below)), alpha))


def equivalence_two_sample(baseline, claimed, margin: float, confidence: float, power: float, name: str,
                           single_note: str = "") -> Test:
    """TOST with Welch's t on the relative scale of the baseline's mean (see :func:`equivalence_one_sample`)."""
    b, c, _ = _scaled(baseline, claimed, True)
    nb, nc = b.size, c.size
    if nb == 0 or nc == 0:
        return Test(name, n=int(nc), note="no values on one side")
    effect = float(b.mean() - c.mean())
    alpha = 1 - confidence
    if nb < 2 or nc < 2:
        t = _no_interval_two_sample(b, c, effect, alpha, power, name,
                                    single_note or "one value on a side: no spread, no interval")
        many = b if nb > 1 else c if nc > 1 else None
        if many is not None and nb + nc - 2 > 0:
            se = float(many.std(ddof=1)) * math.sqrt(1 / nb + 1 / nc)
            t.detectable = detectable_margin(se, nb + nc - 2, alpha, power)
        return t
    with _quiet():
        p_low = stats.ttest_ind(b + margin, c, equal_var=False, alternative="greater").pvalue
        p_high = stats.ttest_ind(b - margin, c, equal_var=False, alternative="less").pvalue
        p_above = stats.ttest_ind(b - margin, c, equal_var=False, alternative="greater").pvalue
        p_below = stats.ttest_ind(b + margin, c, equal_var=False, alternative="less").pvalue
        res = stats.ttest_ind(b, c, equal_var=False)
        ci = res.confidence_interval(1 - 2 * alpha)
    se = math.sqrt(b.var(ddof=1) / nb + c.var(ddof=1) / nc)
    p_tost = float(max(p_low, p_high))
    return Test(name, effect=effect, spread=se, n=int(nc), df=float(res.df), se=se, ci_level=1 - 2 * alpha,
                ci_low=float(ci.low), ci_high=float(ci.high), p_value=p_tost,
                detectable=detectable_margin(se, float(res.df), alpha, power),
                verdict=_equivalence_verdict(p_tost, float(min(p_above, p_below)), alpha))


def correlation(x, y, confidence: float, power: float, name: str) -> Test:
    """Pearson's r (``stats.pearsonr``), its Fisher-z interval; holds when r > 0 significantly. The
    detectable effect is the smallest true r found with probability ``power`` (Fisher z, ``stats.norm``)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Test(name, n=n, note="fewer than three points (or no variation): no correlation")
    alpha = 1 - confidence
    with _quiet():
        res = stats.pearsonr(x, y)
        ci = res.confidence_interval(confidence)
    r, p = float(res.statistic), float(res.pvalue)
    det, note = NAN, ""
    if n > 3:
        det = float(np.tanh((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / math.sqrt(n - 3)))
    else:
        note = "three points: too few for a detectable r (Fisher z needs four)"
    return Test(name, effect=r, n=n, df=n - 2, ci_level=confidence, ci_low=float(ci.low), ci_high=float(ci.high),
                p_value=p, detectable=det, verdict=directional_verdict(p, r, 0.0, alpha), note=note)


def slope(x, y, confidence: float, power: float, name: str) -> Test:
    """Least-squares slope of ``y`` on ``x`` (``stats.linregress``), t interval with n - 2 degrees of
    freedom; holds when the slope is significantly positive."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 2 or np.ptp(x) == 0:
        return Test(name, n=n, note="fewer than two distinct points: no slope")
    with _quiet():
        res = stats.linregress(x, y)
    b = float(res.slope)
    if n < 3:
        return Test(name, effect=b, n=n, note="two points: no spread, no interval")
    alpha = 1 - confidence
    se, df = float(res.stderr), n - 2
    p = float(res.pvalue)
    if se > 0:
        lo, hi = stats.t.interval(confidence, df, loc=b, scale=se)
    else:  # a perfect fit: the interval shrinks to the point
        lo = hi = b
    return Test(name, effect=b, spread=se, n=n, df=df, se=se, ci_level=confidence, ci_low=float(lo), ci_high=float(hi),
                p_value=p, detectable=detectable_shift(se, df, alpha, power),
                verdict=directional_verdict(p, b, 0.0, alpha))
