"""The two tests behind every verdict: an exact McNemar test for two models on the same
images, and a Student-t interval for seed-paired differences.

Pure functions, no SciPy: the t distribution comes from the regularized incomplete beta
function (continued fraction, Numerical Recipes' ``betacf``).
"""
from __future__ import annotations

import math

import numpy as np

from .checks import check_number

def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs.

    b: images only the first model gets right, c: only the second. Under the null each of
    the n = b + c discordant images is a fair coin, so
    ``p = min(1, 2 * sum_{k <= min(b, c)} C(n, k) / 2^n)``; p = 1 when n = 0.
    """
    b = check_number("b", b, low=0, integer=True)
    c = check_number("c", c, low=0, integer=True)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2.0 * tail / 2.0 ** n)


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar test of two runs on the same images.

    correct_a, correct_b: (N,) booleans (or 0/1), per image whether each run is right.
    Returns {"n": N, "b": a right and b wrong, "c": a wrong and b right, "p": two-sided}.
    """
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"mcnemar needs two non-empty per-image vectors of the same length, "
                         f"got {a.size} and {b.size}")
    nb, nc = int((a & ~b).sum()), int((~a & b).sum())
    return {"n": int(a.size), "b": nb, "c": nc, "p": mcnemar_p(nb, nc)}


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom."""
    df = check_number("df", df, low=0.0, low_open=True)
    return _betainc(df / 2.0, 0.5, df / (df + float(t) ** 2))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection)."""
    q = check_number("q", q, low=0.0, high=1.0, low_open=True, high_open=True)
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    if q == 0.5:
        return 0.0
    target = 2.0 * (1.0 - q)           # two-sided tail at the quantile
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_sf2(mid, df) > target else (lo, mid)
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def paired_summary(diffs, confidence: float = 0.95) -> dict:
    """Mean, standard deviation and Student-t interval of seed-paired differences.

    diffs: (n,) floats, one per seed. Returns {"n", "mean", "sd", "low", "high", "p"}
    (p: two-sided one-sample t-test of mean 0); sd, low, high and p are None for n < 2.
    """
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"paired_summary needs finite differences, got {d.tolist()}")
    out = {"n": int(d.size), "mean": float(d.mean()), "sd": None, "low": None, "high": None,
           "p": None}
    if d.size < 2:
        return out
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(d.size)
    half = t_quantile(0.5 + confidence / 2.0, d.size - 1) * se
    p = (t_sf2(out["mean"] / se, d.size - 1) if se > 0 else float(out["mean"] == 0))
    out.update(sd=sd, low=out["mean"] - half, high=out["mean"] + half, p=p)
    return out
