"""The two tests behind every verdict: an exact McNemar test for two models on the same
images, and a Student-t interval for seed-paired differences.

Pure functions over SciPy's kept implementations: the exact binomial test
(``scipy.stats.binomtest``) and Student's t distribution (``scipy.stats.t``).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from ..checks import check_number


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
    # for p = 1/2 the binomial is symmetric: binomtest's two-sided p is twice the tail
    return float(sps.binomtest(min(b, c), n, 0.5).pvalue)


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


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom."""
    df = check_number("df", df, low=0.0, low_open=True)
    return float(2.0 * sps.t.sf(abs(float(t)), df))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom."""
    q = check_number("q", q, low=0.0, high=1.0, low_open=True, high_open=True)
    df = check_number("df", df, low=0.0, low_open=True)
    return float(sps.t.ppf(q, df))


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
