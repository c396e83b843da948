"""Minimum detectable effects for the panel designs, so a report can say whether a
non-significant comparative estimate is informative (Bloom 1995; Burlig, Preonas & Woerman 2020
for panel designs).

* From a standard error: MDE = (z_{1-alpha/2} + z_{power}) * SE, the effect a two-sided level-alpha
  test detects with the given power when the estimate is normal with that SE.
* From placebo estimates (placebo-in-space: the design re-run with untreated units posing as
  treated): MDE = c_{1-alpha} + z_{power} * sd(placebos), where c is the critical value of the
  placebo test (the (1-alpha) quantile of |placebo estimates|, conservative rank rule) - no
  normality assumed for the null distribution.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from helpers.core.errors import CareTrendsError


def mde_from_se(se: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """(z_{1-alpha/2} + z_power) * se."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise CareTrendsError("alpha and power must lie strictly between 0 and 1")
    if not np.isfinite(se) or se <= 0:
        raise CareTrendsError("the standard error must be a positive number")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def mde_from_placebos(placebo_estimates, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Critical value of the placebo test plus z_power times the placebos' spread."""
    est = np.asarray(placebo_estimates, float)
    est = est[np.isfinite(est)]
    if len(est) < 2:
        raise CareTrendsError("a placebo MDE needs at least two placebo estimates")
    ordered = np.sort(np.abs(est))[::-1]
    m = int(np.floor(alpha * (len(ordered) + 1) + 1e-9)) - 1
    if m < 0:
        raise CareTrendsError(f"{len(est)} placebos cannot reject at alpha = {alpha}; need at least "
                              f"{int(np.ceil(1 / alpha)) - 1}")
    return float(ordered[m] + norm.ppf(power) * est.std(ddof=1))


def rejection_rate(effect: float, se: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided normal test at a true effect `effect` with standard error `se`."""
    z = norm.ppf(1 - alpha / 2)
    return float(norm.sf(z - effect / se) + norm.cdf(-z - effect / se))
