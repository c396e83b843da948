"""Calibrated inference for monthly count series, and batched fits of every ITS family.

Numbers only (no prose, no charts, no files). Everything here works on a design matrix of the
shape the ITS engine builds (const, trend, `name:level`, `name:slope`, sin/cos harmonics) and a
log offset, for one series or for many series sharing one design (Monte Carlo).

The monthly default: "ar1_bootstrap"
-------------------------------------
Working model (Zeger 1988, "A regression model for time series of counts", Biometrika 75:621):

    y_t | e_t ~ Poisson(mu_t e_t),   log mu_t = x_t b + log(offset_t),
    E e_t = 1,  Var e_t = sigma2,  Corr(e_s, e_t) = rho^|s-t|     (latent AR(1), extra-Poisson)

* Estimate: the Poisson / quasi-Poisson GLM (working independence), consistent under this model
  (Zeger 1988; Liang & Zeger 1986): the effects are the numbers the quasi-Poisson family reports;
  only their uncertainty changes.
* Statistic: t = b_j / se_j with se_j the equal-weighted-cosine (EWC) long-run variance of the
  GLM influence terms a_jt (y_t - mu_t), K = 0.4 T^(2/3) cosines (Lazarus, Lewis, Stock & Watson
  2018, "HAR inference: recommendations for practice", JBES 36:541-559). This standard error
  does not depend on an estimate of rho, so |t| is close to pivotal in the autocorrelation.
* Critical values: parametric bootstrap-t (Davison & Hinkley 1997, sec. 5.2, 8.2; symmetric
  form, Hall 1988): B series are simulated from mu-hat with a latent Gaussian AR(1) on the log
  scale matching (sigma2, rho) and Poisson counts, the GLM is refitted and the same statistic
  computed; the interval is b -+ q se (q: the k-th largest |t*|) and the p-value
  (1 + #{|t*| >= |t|}) / (B + 1), so "p < 0.05" and "the interval excludes 0" always agree.
  The EWC t is not t_K-distributed here (the level/slope influence is concentrated in the
  post-period, which the fixed-K theory does not cover), so its small-sample distribution for
  this very design comes from the bootstrap: Goncalves & Vogelsang (2011, Econometric Theory
  27:745-791) show that bootstrapping a fixed-smoothing HAR statistic is what delivers the
  refinement.
* Generator: sigma2 and rho by Zeger's moment estimators on the residuals, whose downward bias
  in short series with a trend, a step, a slope and harmonics (the reason GLSAR, SARIMAX and
  Newey-West reject too often) is removed by a preliminary bootstrap round (bootstrap bias
  correction, Kilian 1998, REStat 80:218-230).
* Refits inside the bootstrap are one Newton step from b-hat with the Hessian held at mu-hat,
  b* = b + A (y* - mu) with A = (X'DX)^-1 X' (exact to first order; the tests check the
  distribution of t against full refits). Everything a bootstrap series contributes is then
  linear in y* - mu (the one-step estimate, and the cosine projections of its residuals
  W r* = W (I - diag(mu) X A)(y* - mu)), so one matrix product per series gives it, and the
  Monte Carlo's cost is mostly drawing the two standard normals behind every bootstrap count
  (`helpers.checks.calibration.time_ar1_bootstrap` measures it).

Why not the other candidates (measured sizes in CALIBRATION_RESULTS.md): quasi-Poisson and
Poisson ignore the autocorrelation; Newey-West with a rule-of-thumb bandwidth, GLSAR and
SARIMAX plug in a downward-biased rho and use normal or full-sample t quantiles; the same
bootstrap studentised by Zeger's model-based standard error ("ar1_bootstrap_model_se") is still
oversized at n = 60 because a per-series rho from 60 noisy months has a standard deviation near
0.45, and the critical value then moves with it; fixed-b Bartlett critical values (Kiefer &
Vogelsang 2005) are derived for stationary regressors, not for a step 12 months long.

Other families ("poisson", "quasipoisson", "negbin", "ols", "ar1", "sarimax", "naive_ols",
"ar1_sandwich", "quasipoisson_fixedb") are batched here for the calibration Monte Carlo; each
mirrors `helpers.its.fit_its` for that family (checked against statsmodels in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from helpers.core.errors import CareTrendsError
from helpers.core.vocab import DEFAULT_SEED
from helpers.models import batch
from helpers.models.design import newey_west_lags

__all__ = [
    "MONTHLY_DEFAULT", "BATCH_METHODS", "LOG_LINK_METHODS", "monthly_inference",
    "batch_inference", "irls_poisson", "zeger_moments", "n_cosines", "newey_west_lags",
    "fixed_b_critical_value", "satterthwaite_df", "controlled_its_df",
]

#: The family `fit_its` should use on a monthly series when none is named.
MONTHLY_DEFAULT = "ar1_bootstrap"
#: Methods `batch_inference` fits (one design, many series).
BATCH_METHODS = ("ar1_bootstrap", "ar1_bootstrap_model_se", "ar1_sandwich", "quasipoisson",
                 "poisson", "negbin", "quasipoisson_fixedb", "ols", "ar1", "sarimax",
                 "naive_ols")
#: Methods whose coefficients are on the log scale (effects are rate ratios).
LOG_LINK_METHODS = ("ar1_bootstrap", "ar1_bootstrap_model_se", "ar1_sandwich",
                    "quasipoisson", "poisson", "negbin", "quasipoisson_fixedb")
#: Bootstrap sizes of the default: B for the critical values, B for each bias-correction round.
N_BOOT = 999
N_BIAS = 199
BIAS_ROUNDS = 1
#: Bootstrap counts with a smaller mean are drawn from the Poisson itself, larger ones from its
#: normal approximation.
POISSON_EXACT_BELOW = 10.0
#: Bounds on the latent autocorrelation (a stationary, non-degenerate generator).
RHO_BOUNDS = (-0.9, 0.95)


# --------------------------------------------------------------------------------------------
# Poisson GLM for many series
# --------------------------------------------------------------------------------------------
def irls_poisson(X: np.ndarray, Y: np.ndarray, offset=None, *, tol: float = 1e-10,
                 max_iter: int = 100):
    """Poisson log-link GLM for S series sharing a design (`helpers.models.batch.irls_poisson`,
    the project's one IRLS, with every point observed).

    X (T, p); Y (S, T); offset (S, T), (T,) or None. Returns beta (S, p), the unscaled covariance
    inv(X'DX) (S, p, p), mu (S, T) and a converged flag (S,). Series that fail get NaN."""
    X = np.asarray(X, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    S, T = Y.shape
    off = (np.zeros((S, T)) if offset is None
           else np.broadcast_to(np.asarray(offset, float), (S, T)))
    beta, cov, mu, _, good = batch.irls_poisson(X, Y, off, np.ones((S, T), dtype=bool),
                                                tol=tol, max_iter=max_iter)
    beta = np.where(good[:, None], beta, np.nan)
    mu = np.where(good[:, None], mu, np.nan)
    return beta, cov, mu, good


_solve = batch._solve_each


# --------------------------------------------------------------------------------------------
# Zeger's latent AR(1) model: moments, sandwich, bootstrap-t
# --------------------------------------------------------------------------------------------
def zeger_moments(resid: np.ndarray, mu: np.ndarray, n_params: int):
    """Moment estimators of the latent process (Zeger 1988, sec. 3) from count residuals.

    gamma0 = (sum r^2 T/(T-p) - sum mu) / sum mu^2   (estimates sigma2 = Var e)
    gamma1 = sum r_t r_t+1 / sum mu_t mu_t+1         (estimates sigma2 * rho)
    Works on the last axis; returns (gamma0, gamma1)."""
    return _zeger_from_sums((resid ** 2).sum(-1), (resid[..., 1:] * resid[..., :-1]).sum(-1),
                            mu, n_params)


def _zeger_from_sums(ss, lag, mu, n_params):
    """`zeger_moments` from the residuals' sum of squares `ss` and sum of lag-1 products `lag`
    (mu broadcast against them on all but its last axis)."""
    T = mu.shape[-1]
    g0 = (ss * T / (T - n_params) - mu.sum(-1)) / (mu ** 2).sum(-1)
    g1 = lag / (mu[..., 1:] * mu[..., :-1]).sum(-1)
    return g0, g1


def _latent(g0, g1):
    """(sigma2, rho) of a valid generator from the two moments."""
    sigma2 = np.maximum(g0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(g0 > 1e-10, g1 / g0, 0.0)
    return sigma2, np.clip(np.nan_to_num(rho), *RHO_BOUNDS)


def _lag_products(g: np.ndarray) -> np.ndarray:
    """c_k = sum_t g_t g_t+k (k = 0..T-1), times 2 for k >= 1, on the last axis: the coefficients
    of the AR(1) quadratic form g' R(rho) g = sum_k c_k rho^k."""
    T = g.shape[-1]
    out = np.empty(g.shape[:-1] + (T,))
    out[..., 0] = (g * g).sum(-1)
    for k in range(1, T):
        out[..., k] = 2.0 * (g[..., k:] * g[..., :-k]).sum(-1)
    return out


def _horner(c: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """sum_k c[..., k] rho^k, with c (..., J, K) broadcast against rho (...)."""
    r = rho[..., None]
    acc = np.zeros(np.broadcast_shapes(c.shape[:-1], r.shape))
    for k in range(c.shape[-1] - 1, -1, -1):
        acc = acc * r + c[..., k]
    return acc


def _latent_generator(sigma2, rho):
    """The Gaussian AR(1) on the log scale whose exp matches (sigma2, rho): its variance
    s2 = log(1 + sigma2), autocorrelation rho_u = log(1 + rho sigma2) / s2, sd and innovation sd."""
    s2 = np.log1p(sigma2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho_u = np.where(s2 > 1e-12, np.log1p(rho * sigma2) / s2, 0.0)
    rho_u = np.clip(np.nan_to_num(rho_u), -0.99, 0.99)   # large sigma2 with rho < 0
    sd = np.sqrt(s2)
    return s2, rho_u, sd, sd * np.sqrt(np.maximum(1 - rho_u ** 2, 0.0))


def _ar1_block_length(T: int) -> int:
    """Length of the pieces the AR(1) recursion is solved in by matrix products: the divisor of
    T nearest 16 among those from 6 to 32 (T itself when there is none)."""
    good = [d for d in range(6, min(T, 32) + 1) if T % d == 0]
    return min(good, key=lambda d: (abs(d - 16), d)) if good else T


#: Values (series x draws x months) transformed at a time inside a draw chunk: a piece that
#: stays in the processor's cache between the steps of the simulation and of the refits.
WORK_VALUES = 1 << 17
#: The largest matrix product (multiply-adds) handed to BLAS in one call. OpenBLAS computes
#: products up to this size on the calling thread; the Monte Carlo's mid-sized products are
#: several times slower when spread over threads that the other processes of a report run need.
BLAS_ONE_THREAD = 1 << 18


def _matmul_rows(a, b, out):
    """out[s] = a[s] @ b[s] for stacks a (S, M, K) and b (S, K, N), in pieces of rows small
    enough (BLAS_ONE_THREAD) for BLAS to compute them on this thread."""
    S, M, K = a.shape
    rows = max(1, BLAS_ONE_THREAD // (K * b.shape[-1]))
    for s in range(S):
        for r0 in range(0, M, rows):
            np.matmul(a[s, r0:r0 + rows], b[s], out=out[s, r0:r0 + rows])
    return out


def _simulate_latent_residuals(mu, sigma2, rho, n_draws, rng, *, out=None,
                               work_values=WORK_VALUES):
    """e* = y* - mu for counts y* ~ Poisson(mu e), e = exp(u - s2/2), u the Gaussian AR(1) of
    `_latent_generator` (stationary: u_0 = sd z_0, u_t = rho_u u_t-1 + innovation sd z_t).
    mu (S, T), sigma2/rho (S,) -> (S, n_draws, T), written into `out` when given.

    Means of at least POISSON_EXACT_BELOW are drawn from the normal approximation to the Poisson
    (same mean and variance): the statistics depend on the draws only through linear and
    quadratic forms, and numpy's Poisson sampler is the slowest step of the Monte Carlo.

    The random stream is used in a fixed order: every latent normal (series by series, draw by
    draw, month by month), then every count normal in the same order, then the exact Poisson
    draws of the small means in that order. The work runs on pieces of whole series of about
    `work_values` values, which changes the arithmetic, never the draws: the recursion is solved
    in blocks of L months by one matrix product per piece (u = z C' within a block, then
    u += rho^(1..L) x the last value of the block before), all at half scale so that one exp
    gives the root of the Poisson mean, exp((u + log mu - s2/2) / 2), and its square the mean."""
    S, T = mu.shape
    n = int(n_draws)
    s2, rho_u, sd, innov_sd = _latent_generator(sigma2, rho)
    L = _ar1_block_length(T)
    q = T // L
    k = np.arange(L)
    lag = k[:, None] - k[None, :]
    # C' (S, L, L) at half scale: C[i, j] = innov_sd rho_u^(i - j) / 2 for j <= i; the first
    # month of the series has sd instead of innov_sd (its normals are scaled by sd / innov_sd).
    CT = np.where(lag >= 0, rho_u[:, None, None] ** np.maximum(lag, 0), 0.0)
    CT = np.ascontiguousarray((CT * (0.5 * innov_sd)[:, None, None]).transpose(0, 2, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(innov_sd > 0, sd / innov_sd, 0.0)
    carry = rho_u[:, None] ** (k + 1)                       # (S, L)
    with np.errstate(divide="ignore"):
        shift = 0.5 * (np.log(mu) - s2[:, None] / 2)        # log of the root of mu e^(-s2/2)
    E = np.empty((S, n, T)) if out is None else out
    per = max(1, min(S, int(work_values) // max(1, n * T)))
    work = np.empty((2, per * n * T))
    mask = np.empty(per * n * T, dtype=bool)
    bounds = [(s0, min(S, s0 + per)) for s0 in range(0, S, per)]
    for s0, s1 in bounds:                                   # latent normals -> Poisson means
        m = s1 - s0
        z = E[s0:s1]
        rng.standard_normal(out=z)
        z[:, :, 0] *= first[s0:s1, None]
        u = work[0, :m * n * T].reshape(m, n * q, L)
        _matmul_rows(z.reshape(m, n * q, L), CT[s0:s1], u)
        if q > 1:                                           # carry across the blocks
            u4 = u.reshape(m, n, q, L)
            ends = np.empty((m, n, q - 1))                  # u at the end of blocks 0..q-2
            ends[:, :, 0] = u4[:, :, 0, L - 1]
            rho_l = carry[s0:s1, L - 1:]
            for b in range(1, q - 1):
                ends[:, :, b] = u4[:, :, b, L - 1] + rho_l * ends[:, :, b - 1]
            u4[:, :, 1:] += ends[..., None] * carry[s0:s1, None, None, :]
        u3 = u.reshape(m, n, T)
        np.add(u3, shift[s0:s1, None, :], out=u3)
        np.exp(u3, out=z)                                   # root of the Poisson mean
    small_pos, small_lam = [], []
    for s0, s1 in bounds:                                   # count normals -> e* = y* - mu
        m = s1 - s0
        root = E[s0:s1]
        w = work[0, :m * n * T].reshape(m, n, T)
        rng.standard_normal(out=w)
        lam = work[1, :m * n * T].reshape(m, n, T)
        np.multiply(root, root, out=lam)
        np.multiply(root, w, out=w)
        np.add(lam, w, out=w)                               # the counts
        low = mask[:m * n * T]
        np.less(lam.reshape(-1), POISSON_EXACT_BELOW, out=low)
        if low.any():
            pos = np.flatnonzero(low)
            small_lam.append(lam.reshape(-1)[pos])
            small_pos.append(pos + s0 * n * T)
        np.subtract(w, mu[s0:s1, None, :], out=root)
    if small_pos:
        pos = np.concatenate(small_pos)
        counts = rng.poisson(np.concatenate(small_lam))
        flat = E.reshape(-1)
        flat[pos] = counts - mu.reshape(-1)[(pos // (n * T)) * T + pos % T]
    return E


def _simulate_latent_counts(mu, sigma2, rho, n_draws, rng):
    """Counts y* (S, n_draws, T) of `_simulate_latent_residuals` (the same draws)."""
    return _simulate_latent_residuals(mu, sigma2, rho, n_draws, rng) + mu[:, None, :]


def _one_step(X, A, mu, ystar):
    """Linearised refit of the bootstrap series: delta = A (y* - mu) (S, B, p) and the residuals
    r* = (y* - mu) - mu * X delta."""
    e = ystar - mu[:, None, :]
    return _one_step_residuals(e, A, mu[:, :, None] * X[None])


def _one_step_residuals(e, A, muX):
    """delta = A e* (S, B, p) and r* = e* - (mu X) delta (S, B, T) from e* = y* - mu (S, B, T),
    A (S, p, T) and mu X (S, T, p)."""
    S, B, T = e.shape
    delta = _matmul_rows(e, A.transpose(0, 2, 1), np.empty((S, B, A.shape[1])))
    fitted = _matmul_rows(delta, muX.transpose(0, 2, 1), np.empty((S, B, T)))
    return delta, np.subtract(e, fitted, out=fitted)


def _bootstrap_moments(X, A, mu, e, *, work_values=WORK_VALUES):
    """Zeger's two moments (S, B) of the one-step residuals of every bootstrap series, and the
    one-step estimates delta (S, B, p); computed on pieces of whole series."""
    S, B, T = e.shape
    muX = mu[:, :, None] * X[None]
    g0, g1 = np.empty((S, B)), np.empty((S, B))
    delta = np.empty((S, B, X.shape[1]))
    per = max(1, min(S, int(work_values) // max(1, B * T)))
    for s0 in range(0, S, per):
        sl = slice(s0, s0 + per)
        delta[sl], r = _one_step_residuals(e[sl], A[sl], muX[sl])
        ss = np.einsum("sbt,sbt->sb", r, r)
        lag = np.einsum("sbt,sbt->sb", r[..., 1:], r[..., :-1])
        g0[sl], g1[sl] = _zeger_from_sums(ss, lag, mu[sl, None, :], X.shape[1])
    return g0, g1, delta


def n_cosines(T: int) -> int:
    """Number of cosine terms of the EWC long-run variance: 0.4 T^(2/3), at least 3 (Lazarus,
    Lewis, Stock & Watson 2018, "HAR inference: recommendations for practice", JBES 36:541-559)."""
    return max(3, int(round(0.4 * T ** (2.0 / 3.0))))


def _cosine_basis(T: int, K: int) -> np.ndarray:
    """sqrt(2/T) cos(pi k (t + 1/2) / T), k = 1..K: the equal-weighted cosine (EWC) basis."""
    t = np.arange(T) + 0.5
    return np.sqrt(2.0 / T) * np.cos(np.pi * np.outer(np.arange(1, K + 1), t) / T)


def _ar1_bootstrap_batch(X, Y, offset, effect_idx, rng, *, n_boot=N_BOOT, n_bias=N_BIAS,
                         bias_rounds=BIAS_ROUNDS, alpha=0.05, bias_correct=True,
                         studentise="har", n_basis=None, chunk_values=3_000_000,
                         work_values=WORK_VALUES):
    """The ar1_bootstrap method on S series (see the module docstring). Returns a dict of (S, J)
    arrays (coef, se, se_har, low, high, p_value, crit), (S,) arrays (sigma2, rho, sigma2_bc,
    rho_bc) and the bootstrap covariance of all coefficients (S, p, p).

    chunk_values fixes which series share one call of the random generator (about chunk_values
    / (B T) series), hence the order of the draws: the results depend on it. work_values only
    splits the arithmetic inside a chunk (cache-sized pieces) and leaves the draws alone."""
    X = np.asarray(X, float)
    T, p = X.shape
    beta, cov, mu, ok = irls_poisson(X, Y, offset)
    S = len(beta)
    J = len(effect_idx)
    out = {k: np.full((S, J), np.nan)
           for k in ("coef", "se", "se_har", "low", "high", "p_value", "crit")}
    for k in ("sigma2", "rho", "sigma2_bc", "rho_bc"):
        out[k] = np.full(S, np.nan)
    out["cov"] = np.full((S, p, p), np.nan)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    K = n_cosines(T) if n_basis is None else int(n_basis)
    basis = _cosine_basis(T, K)
    n_most = max(n_boot, n_bias if bias_correct else 0)
    step = max(1, int(chunk_values // (max(n_boot, n_bias) * T)))
    buffer = np.empty(min(step, idx.size) * n_most * T)     # the chunk's bootstrap series
    for lo in range(0, idx.size, step):
        sel = idx[lo:lo + step]
        res = _bootstrap_chunk(X, Y[sel], beta[sel], cov[sel], mu[sel], effect_idx, rng,
                               n_boot=n_boot, n_bias=n_bias, bias_rounds=bias_rounds,
                               alpha=alpha, bias_correct=bias_correct, studentise=studentise,
                               basis=basis, buffer=buffer, work_values=work_values)
        for k, v in res.items():
            out[k][sel] = v
    return out


def _critical_rank(n_boot: int, alpha: float) -> int:
    """k such that |t| > (k-th largest |t*|) exactly when the bootstrap p-value
    (1 + #{|t*| >= |t|}) / (B + 1) is below alpha."""
    return max(1, int(math.floor(alpha * (n_boot + 1) + 1e-9)) - 1)


def _bootstrap_chunk(X, Y, beta, cov, mu, effect_idx, rng, *, n_boot, n_bias, bias_rounds,
                     alpha, bias_correct, studentise, basis, buffer=None,
                     work_values=WORK_VALUES):
    T, p = X.shape
    S = len(beta)
    A = cov @ X.T                                   # (S, p, T): b-hat - b = A (y - mu)
    Aj = A[:, effect_idx, :]                        # (S, J, T)
    g0, g1 = zeger_moments(Y - mu, mu, p)
    sigma2, rho = _latent(g0, g1)
    gen0, gen1 = g0.copy(), g1.copy()

    def draws(n_draws, s2, r):
        out = None if buffer is None else buffer[:S * n_draws * T].reshape(S, n_draws, T)
        return _simulate_latent_residuals(mu, s2, r, n_draws, rng, out=out,
                                          work_values=work_values)

    if bias_correct:
        # Bootstrap bias correction of the two moments (Kilian 1998): simulate at the current
        # generator, measure how far the moments' means fall from it, move the generator by that.
        for _ in range(bias_rounds):
            s2, r = _latent(gen0, gen1)
            m0, m1, _ = _bootstrap_moments(X, A, mu, draws(n_bias, s2, r),
                                           work_values=work_values)
            gen0 = g0 - (m0.mean(1) - s2)
            gen1 = g1 - (m1.mean(1) - s2 * r)
    s2_bc, rho_bc = _latent(gen0, gen1)
    estar = draws(n_boot, s2_bc, rho_bc)            # (S, B, T): y* - mu
    if studentise == "har":
        # EWC long-run variance of the influence terms a_jt r_t (Lazarus et al. 2018): robust to
        # the unknown autocorrelation, so |t| is close to pivotal and the bootstrap's noisy
        # estimate of rho barely moves its critical value.
        J = Aj.shape[1]
        K = basis.shape[0]
        weights = (Aj[:, :, None, :] * basis[None, None]).reshape(S, J * K, T)
        lam = np.einsum("smt,st->sm", weights, Y - mu).reshape(S, J, K)
        se = np.sqrt(T * (lam ** 2).mean(-1))
        # Everything a bootstrap series gives is linear in e* = y* - mu: the one-step estimate
        # delta = A e*, and the projections of its residuals r* = e* - mu X delta on the cosines,
        # W r* = (W - (W mu) X A) e*. One matrix product per series gives both.
        project = weights - np.matmul((weights * mu[:, None, :]) @ X, A)
        GT = np.concatenate([A, project], axis=1).transpose(0, 2, 1)     # (S, T, p + J K)
        lin = _matmul_rows(estar, GT, np.empty((S, estar.shape[1], GT.shape[-1])))
        delta = lin[..., :p]
        lam_b = lin[..., p:].reshape(S, -1, J, K)
        se_b = np.sqrt(np.einsum("sbjk,sbjk->sbj", lam_b, lam_b) * (T / K))
    else:  # "model": Zeger's sandwich with the raw moment estimates (kept for comparison)
        G = Aj * mu[:, None, :]
        pois = (Aj ** 2 * mu[:, None, :]).sum(-1)
        lagc = _lag_products(G)
        se = np.sqrt(pois + sigma2[:, None] * _horner(lagc, rho))
        m0, m1, delta = _bootstrap_moments(X, A, mu, estar, work_values=work_values)
        s2b, rb = _latent(m0, m1)
        se_b = np.sqrt(pois[:, None, :] + s2b[..., None] * _horner(lagc[:, None], rb))
    b = beta[:, effect_idx]
    tstar = np.abs(delta[:, :, effect_idx]) / se_b                     # (S, B, J)
    tobs = np.abs(b) / se
    k = _critical_rank(n_boot, alpha)
    crit = -np.partition(-tstar, k - 1, axis=1)[:, k - 1, :]           # k-th largest
    pval = (1 + (tstar >= tobs[:, None, :]).sum(1)) / (n_boot + 1)
    centred = delta - delta.mean(1, keepdims=True)
    boot_cov = np.matmul(centred.transpose(0, 2, 1), centred) / (n_boot - 1)
    return {"coef": b, "se": np.sqrt(np.einsum("spp->sp", boot_cov)[:, effect_idx]),
            "se_har": se, "low": b - crit * se, "high": b + crit * se, "p_value": pval,
            "crit": crit, "sigma2": sigma2, "rho": rho, "sigma2_bc": s2_bc, "rho_bc": rho_bc,
            "cov": boot_cov}


def _ar1_sandwich_batch(X, Y, offset, effect_idx, rng, *, n_bias=N_BIAS, alpha=0.05):
    """Zeger's sandwich with bias-corrected (sigma2, rho) and normal critical values: the
    analytic alternative to the bootstrap-t (no resampling of the statistic)."""
    X = np.asarray(X, float)
    T, p = X.shape
    beta, cov, mu, ok = irls_poisson(X, Y, offset)
    S = len(beta)
    J = len(effect_idx)
    out = {k: np.full((S, J), np.nan) for k in ("coef", "se", "low", "high", "p_value")}
    idx = np.flatnonzero(ok)
    step = max(1, int(4_000_000 // (n_bias * T)))
    z = stats.norm.ppf(1 - alpha / 2)
    for lo in range(0, idx.size, step):
        sel = idx[lo:lo + step]
        A = cov[sel] @ X.T
        m = mu[sel]
        G = A[:, effect_idx, :] * m[:, None, :]
        pois = (A[:, effect_idx, :] ** 2 * m[:, None, :]).sum(-1)
        g0, g1 = zeger_moments(Y[sel] - m, m, p)
        s2, r = _latent(g0, g1)
        m0, m1, _ = _bootstrap_moments(
            X, A, m, _simulate_latent_residuals(m, s2, r, n_bias, rng))
        s2c, rc = _latent(g0 - (m0.mean(1) - s2), g1 - (m1.mean(1) - s2 * r))
        se = np.sqrt(pois + s2c[:, None] * _horner(_lag_products(G), rc))
        b = beta[sel][:, effect_idx]
        out["coef"][sel], out["se"][sel] = b, se
        out["low"][sel], out["high"][sel] = b - z * se, b + z * se
        out["p_value"][sel] = 2 * stats.norm.sf(np.abs(b) / se)
    return out


def _names_and_matrix(X, columns):
    if isinstance(X, pd.DataFrame):
        return list(X.columns), X.to_numpy(float)
    X = np.asarray(X, float)
    if X.ndim != 2:
        raise CareTrendsError("the design matrix must be two-dimensional (one row per period)")
    names = list(columns) if columns is not None else [f"x{j}" for j in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise CareTrendsError(f"{len(names)} column names for {X.shape[1]} design columns")
    return names, X


def monthly_inference(y, X, log_offset=None, *, effect_columns: Sequence[str] | None = None,
                      seed=DEFAULT_SEED, n_boot: int = N_BOOT, n_bias: int = N_BIAS,
                      bias_rounds: int = BIAS_ROUNDS, ci_level: float = 0.95,
                      n_basis: int | None = None,
                      columns: Sequence[str] | None = None) -> dict:
    """The calibrated default for a monthly count series (method "ar1_bootstrap").

    y: counts (T,); X: the ITS design (DataFrame, or array with `columns`); log_offset: log
    population (T,) or None; effect_columns: the columns whose intervals and p-values are wanted
    (default: every column containing ':', i.e. the level/slope terms). Coefficients are on the
    log scale (exp gives rate ratios). n_basis: cosines of the EWC standard error (default
    0.4 T^(2/3); more gives shorter intervals and less robustness to strong autocorrelation).
    Returns a dict:

    params   Series, every column (the Poisson/quasi-Poisson GLM estimates)
    se       Series, every column: standard deviation of the bootstrap estimates
    cov      DataFrame, the bootstrap covariance of the estimates (for counterfactual bands)
    ci_low, ci_high, p_value
             Series over effect_columns: symmetric bootstrap-t at `ci_level` (log scale)
    critical, se_har
             Series over effect_columns: the bootstrap critical value of |t| and the EWC
             standard error it multiplies (ci = params -+ critical x se_har)
    method   "ar1_bootstrap"
    details  dict: sigma2, rho (moment estimates of the latent process), sigma2_generator,
             rho_generator (the bias-corrected values the bootstrap simulated from), dispersion
             (Pearson chi2 / df), n_cosines, n_boot, n_bias, bias_rounds, seed, n, n_params
    """
    names, Xm = _names_and_matrix(X, columns)
    y = np.asarray(y, float).ravel()
    T, p = Xm.shape
    if len(y) != T:
        raise CareTrendsError(f"{len(y)} counts for a design with {T} rows; give one row per month")
    if not np.isfinite(y).all() or (y < 0).any():
        raise CareTrendsError("the counts must be finite and non-negative; drop missing months "
                              "first")
    if T - p < 3:
        raise CareTrendsError(f"{T} months cannot estimate {p} coefficients and an error process; "
                              "use a longer series or declare fewer effects")
    if np.linalg.matrix_rank(Xm) < p:
        raise CareTrendsError("the design matrix is not of full rank; declare fewer effects")
    effect_columns = list(effect_columns) if effect_columns is not None else [
        c for c in names if ":" in c]
    missing = [c for c in effect_columns if c not in names]
    if missing or not effect_columns:
        raise CareTrendsError(f"effect_columns {missing or effect_columns} are not design columns "
                              f"{names}; name the level/slope columns to test")
    if not 0 < ci_level < 1:
        raise CareTrendsError(f"ci_level must be between 0 and 1, not {ci_level}")
    alpha = 1 - ci_level
    if n_boot < 19 or ((n_boot + 1) * alpha) % 1 > 1e-9:
        raise CareTrendsError(f"n_boot={n_boot}: use a number B with (B + 1) x {alpha:g} whole, "
                              "e.g. 199, 999 or 1999, so the bootstrap test has exact size")
    off = None if log_offset is None else np.asarray(log_offset, float).ravel()
    rng = np.random.default_rng(seed)
    Y = y[None, :]
    all_idx = list(range(p))
    res = _ar1_bootstrap_batch(Xm, Y, off, all_idx, rng, n_boot=n_boot, n_bias=n_bias,
                               bias_rounds=bias_rounds, alpha=alpha, n_basis=n_basis)
    if not np.isfinite(res["coef"]).all():
        raise CareTrendsError("the Poisson model did not converge on these counts (all zeros, or a "
                              "segment with no events?); check the series or declare fewer effects")
    beta, _, mu, _ = irls_poisson(Xm, Y, off)
    cov = res["cov"][0]
    pearson = float((((y - mu[0]) ** 2) / mu[0]).sum() / (T - p))
    j = [names.index(c) for c in effect_columns]
    ser = lambda v, idx=names: pd.Series(np.asarray(v, float), index=idx)  # noqa: E731
    return {
        "params": ser(beta[0]),
        "se": ser(np.sqrt(np.diag(cov))),
        "cov": pd.DataFrame(cov, index=names, columns=names),
        "ci_low": ser(res["low"][0, j], effect_columns),
        "ci_high": ser(res["high"][0, j], effect_columns),
        "p_value": ser(res["p_value"][0, j], effect_columns),
        "critical": ser(res["crit"][0, j], effect_columns),
        "se_har": ser(res["se_har"][0, j], effect_columns),
        "method": "ar1_bootstrap",
        "details": {"sigma2": float(res["sigma2"][0]), "rho": float(res["rho"][0]),
                    "sigma2_generator": float(res["sigma2_bc"][0]),
                    "rho_generator": float(res["rho_bc"][0]), "dispersion": pearson,
                    "n_cosines": n_cosines(T) if n_basis is None else int(n_basis),
                    "n_boot": int(n_boot), "n_bias": int(n_bias),
                    "bias_rounds": int(bias_rounds), "seed": seed, "n": int(T),
                    "n_params": int(p)},
    }


# --------------------------------------------------------------------------------------------
# The other families, batched (one design, many series)
# --------------------------------------------------------------------------------------------
def fixed_b_critical_value(b: float, alpha: float = 0.05) -> float:
    """Two-sided 5% critical value of the t statistic with a Bartlett-kernel HAC variance and
    bandwidth M = b T under fixed-b asymptotics: Kiefer & Vogelsang (2005, Econometric Theory
    21:1130-1164), Table/eq. for the Bartlett kernel, cv(b) = 1.96 + 2.9694 b + 0.4160 b^2
    - 0.5324 b^3 (their 97.5% quantile fit)."""
    if alpha != 0.05:
        raise CareTrendsError("fixed-b critical values are tabulated here for alpha = 0.05 only")
    return 1.96 + 2.9694 * b + 0.4160 * b ** 2 - 0.5324 * b ** 3


def _t_inference(coef, se, dof, alpha):
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = coef / se
    if dof is None:
        q = stats.norm.ppf(1 - alpha / 2)
        return 2 * stats.norm.sf(np.abs(stat)), q * se
    return 2 * stats.t.sf(np.abs(stat), dof), stats.t.ppf(1 - alpha / 2, dof) * se


def _pack(beta, se, pval, half, idx):
    b, s = beta[:, idx], se[:, idx]
    return {"coef": b, "se": s, "p_value": pval[:, idx], "low": b - half[:, idx],
            "high": b + half[:, idx]}


def batch_inference(method: str, X, Y, log_offset=None, *, effect_idx: Sequence[int],
                    alpha: float = 0.05, seed=DEFAULT_SEED, hac_lags: int | None = None,
                    fixed_b: float = 0.2, n_boot: int = N_BOOT, n_bias: int = N_BIAS,
                    bias_rounds: int = BIAS_ROUNDS) -> dict:
    """Fit `method` to every row of Y (S, T) with the shared design X (T, p); return dict of
    (S, J) arrays for the effect columns `effect_idx`: coef, se, low, high, p_value (log scale
    for LOG_LINK_METHODS, the outcome's own scale otherwise).

    Families as `helpers.its.fit_its`: poisson (normal), quasipoisson (Pearson dispersion, t on
    T - p), negbin (NB2, alpha by profile maximum likelihood, normal), ols (Newey-West HAC with
    statsmodels' small-sample correction, t on T - p), ar1 (GLSAR iterative Cochrane-Orcutt, t on
    T - 1 - p), sarimax (exact Gaussian ML of a regression with AR(1) errors, normal; the
    Gaussian families ignore the offset as fit_its does); plus naive_ols (classical OLS),
    quasipoisson_fixedb (Bartlett HAC on the GLM scores, bandwidth fixed_b x T, Kiefer-Vogelsang
    critical value), ar1_sandwich and ar1_bootstrap (see the module docstring)."""
    X = np.asarray(X, float)
    Y = np.atleast_2d(np.asarray(Y, float))
    S, T = Y.shape
    p = X.shape[1]
    idx = list(effect_idx)
    rng = np.random.default_rng(seed)
    if method == "ar1_bootstrap":
        res = _ar1_bootstrap_batch(X, Y, log_offset, idx, rng, n_boot=n_boot, n_bias=n_bias,
                                   bias_rounds=bias_rounds, alpha=alpha)
        return {k: res[k] for k in ("coef", "se", "low", "high", "p_value")}
    if method == "ar1_bootstrap_model_se":  # studentised by Zeger's model-based se instead
        res = _ar1_bootstrap_batch(X, Y, log_offset, idx, rng, n_boot=n_boot, n_bias=n_bias,
                                   bias_rounds=bias_rounds, alpha=alpha, studentise="model")
        return {k: res[k] for k in ("coef", "se", "low", "high", "p_value")}
    if method == "ar1_sandwich":
        return _ar1_sandwich_batch(X, Y, log_offset, idx, rng, n_bias=n_bias, alpha=alpha)
    if method in ("poisson", "quasipoisson", "quasipoisson_fixedb"):
        beta, cov, mu, _ = irls_poisson(X, Y, log_offset)
        se = np.sqrt(np.einsum("spp->sp", cov))
        if method == "poisson":
            pval, half = _t_inference(beta, se, None, alpha)
        elif method == "quasipoisson":
            phi = ((Y - mu) ** 2 / mu).sum(1) / (T - p)
            se = se * np.sqrt(phi)[:, None]
            pval, half = _t_inference(beta, se, T - p, alpha)
        else:
            lags = max(1, int(round(fixed_b * T)))
            scores = (Y - mu)[:, :, None] * X[None]
            meat = _bartlett_meat(scores, lags)
            V = cov @ meat @ cov
            se = np.sqrt(np.einsum("spp->sp", V))
            q = fixed_b_critical_value(lags / T, alpha)
            with np.errstate(divide="ignore", invalid="ignore"):
                tstat = np.abs(beta / se)
            # p-value by interpolating the fixed-b critical value at the observed |t| is not
            # tabulated; report the decision as p < alpha exactly when |t| > q.
            pval = np.where(tstat > q, alpha / 2, 0.5)
            half = q * se
        return _pack(beta, se, pval, half, idx)
    if method == "negbin":
        beta, se = _negbin_batch(X, Y, log_offset)
        pval, half = _t_inference(beta, se, None, alpha)
        return _pack(beta, se, pval, half, idx)
    if method in ("ols", "naive_ols"):
        xtx_inv = np.linalg.inv(X.T @ X)
        beta = Y @ X @ xtx_inv
        resid = Y - beta @ X.T
        if method == "naive_ols":
            s2 = (resid ** 2).sum(1) / (T - p)
            se = np.sqrt(s2[:, None] * np.diag(xtx_inv)[None, :])
        else:
            lags = newey_west_lags(T) if hac_lags is None else int(hac_lags)
            meat = _bartlett_meat(resid[:, :, None] * X[None], lags)
            cov = xtx_inv[None] @ meat @ xtx_inv[None] * (T / (T - p))  # use_correction=True
            se = np.sqrt(np.einsum("spp->sp", cov))
        pval, half = _t_inference(beta, se, T - p, alpha)
        return _pack(beta, se, pval, half, idx)
    if method == "ar1":
        beta, se = _glsar_batch(X, Y)
        pval, half = _t_inference(beta, se, T - 1 - p, alpha)
        return _pack(beta, se, pval, half, idx)
    if method == "sarimax":
        beta, se = _ar1_mle_batch(X, Y)
        pval, half = _t_inference(beta, se, None, alpha)
        return _pack(beta, se, pval, half, idx)
    raise CareTrendsError(f"unknown method {method!r}; choose one of {', '.join(BATCH_METHODS)}")


def _bartlett_meat(scores, lags):
    """sum_t s_t s_t' + sum_l (1 - l/(L+1)) (G_l + G_l') for scores (S, T, p)."""
    meat = np.einsum("stp,stq->spq", scores, scores, optimize=True)
    for lag in range(1, lags + 1):
        g = np.einsum("stp,stq->spq", scores[:, lag:], scores[:, :-lag], optimize=True)
        meat += (1 - lag / (lags + 1)) * (g + np.transpose(g, (0, 2, 1)))
    return meat


def _negbin_batch(X, Y, offset, *, lo=-12.0, hi=3.0, iters=40):
    """NB2 GLM with alpha by profile maximum likelihood over log(alpha) in [lo, hi] (golden
    section, as fit_its' bounded scalar search), beta by Fisher scoring at each alpha (warm
    start). Returns beta and its model-based standard errors at the optimum."""
    S, T = Y.shape
    off = np.zeros((S, T)) if offset is None else np.broadcast_to(np.asarray(offset, float), (S, T))
    beta0, _, _, _ = irls_poisson(X, Y, offset)
    beta0 = np.nan_to_num(beta0)
    gr = (math.sqrt(5) - 1) / 2
    a = np.full(S, lo)
    b = np.full(S, hi)
    c = b - gr * (b - a)
    d = a + gr * (b - a)
    bc, fc = _nb_profile(X, Y, off, np.exp(c), beta0)
    bd, fd = _nb_profile(X, Y, off, np.exp(d), beta0)
    for _ in range(iters):
        left = fc > fd                      # maximise: keep [a, d]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        new_c = b - gr * (b - a)
        new_d = a + gr * (b - a)
        # the surviving interior point moves; one new evaluation per side
        c_keep = np.where(left, new_c, d)
        d_keep = np.where(left, c, new_d)
        f_keep = np.where(left, fc, fd)
        b_keep = np.where(left[:, None], bc, bd)
        eval_at = np.where(left, new_c, new_d)
        be, fe = _nb_profile(X, Y, off, np.exp(eval_at), b_keep)
        fc = np.where(left, fe, f_keep)
        fd = np.where(left, f_keep, fe)
        bc = np.where(left[:, None], be, b_keep)
        bd = np.where(left[:, None], b_keep, be)
        c, d = c_keep, d_keep
    log_alpha = (a + b) / 2
    beta, _ = _nb_profile(X, Y, off, np.exp(log_alpha), np.where((fc > fd)[:, None], bc, bd))
    alpha = np.exp(log_alpha)
    mu = np.exp(beta @ X.T + off)
    W = mu / (1 + alpha[:, None] * mu)
    info = np.einsum("tp,st,tq->spq", X, W, X, optimize=True)
    se = np.sqrt(np.einsum("spp->sp", np.linalg.inv(info)))
    return beta, se


def _nb_profile(X, Y, off, alpha, beta, iters=25, tol=1e-10):
    """Fisher scoring for beta at fixed alpha (S,); returns beta and the log-likelihood."""
    a = alpha[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(iters):
            eta = beta @ X.T + off
            mu = np.exp(eta)
            W = mu / (1 + a * mu)
            z = eta - off + (Y - mu) / mu
            A = np.einsum("tp,st,tq->spq", X, W, X, optimize=True)
            rhs = np.einsum("tp,st->sp", X, W * z, optimize=True)
            new = _solve(A, rhs)
            if np.all(np.abs(new - beta) <= tol * (1 + np.abs(new))):
                beta = new
                break
            beta = new
        mu = np.exp(beta @ X.T + off)
        theta = 1 / a
        ll = (special.gammaln(Y + theta) - special.gammaln(theta) - special.gammaln(Y + 1)
              + theta * np.log(theta / (theta + mu)) + Y * np.log(mu / (theta + mu))).sum(1)
    return beta, np.nan_to_num(ll, nan=-np.inf)


def _glsar_batch(X, Y, maxiter=50, rtol=1e-4):
    """statsmodels `GLSAR(y, X, rho=1).iterative_fit(maxiter)` for many series (rho from 0;
    Yule-Walker rho of the residuals; OLS on the whitened data without the first row)."""
    S, T = Y.shape
    rho = np.zeros(S)
    done = np.zeros(S, dtype=bool)
    last = None
    for i in range(maxiter - 1):
        beta_i, _ = _whitened_ols(X, Y, rho)
        if i > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                done |= np.max(np.abs(last - beta_i) / np.abs(last), axis=1) < rtol
        last = beta_i
        if done.all():
            break
        r = Y - beta_i @ X.T
        r = r - r.mean(1, keepdims=True)
        rho = np.where(done, rho, ((r[:, 1:] * r[:, :-1]).sum(1) / (T - 1))
                       / ((r * r).sum(1) / T))
    return _whitened_ols(X, Y, rho)


def _whitened_ols(X, Y, rho):
    Xw = X[None, 1:, :] - rho[:, None, None] * X[None, :-1, :]
    Yw = Y[:, 1:] - rho[:, None] * Y[:, :-1]
    inv = np.linalg.inv(np.einsum("stp,stq->spq", Xw, Xw, optimize=True))
    beta = np.einsum("spq,stq,st->sp", inv, Xw, Yw, optimize=True)
    resid = Yw - np.einsum("stp,sp->st", Xw, beta)
    s2 = (resid ** 2).sum(1) / (Xw.shape[1] - X.shape[1])
    return beta, np.sqrt(s2[:, None] * np.einsum("spp->sp", inv))


def _prais_winsten(X, Y, rho):
    """Exact AR(1) transform (first row scaled by sqrt(1 - rho^2)); GLS fit at rho (S,)."""
    scale0 = np.sqrt(1 - rho ** 2)
    Xw = np.concatenate([scale0[:, None, None] * X[None, :1, :],
                         X[None, 1:, :] - rho[:, None, None] * X[None, :-1, :]], axis=1)
    Yw = np.concatenate([scale0[:, None] * Y[:, :1], Y[:, 1:] - rho[:, None] * Y[:, :-1]], axis=1)
    inv = np.linalg.inv(np.einsum("stp,stq->spq", Xw, Xw, optimize=True))
    beta = np.einsum("spq,stq,st->sp", inv, Xw, Yw, optimize=True)
    ssr = ((Yw - np.einsum("stp,sp->st", Xw, beta)) ** 2).sum(1)
    return beta, inv, ssr


def _ar1_mle_batch(X, Y, iters=40):
    """Exact Gaussian maximum likelihood of y = X b + u, u AR(1) stationary (what SARIMAX(1,0,0)
    with exog maximises): concentrated log-likelihood -T/2 log(SSR(rho)/T) + 1/2 log(1 - rho^2)
    maximised by golden section over rho in (-0.99, 0.99); covariance sigma2 (X~'X~)^-1 at the
    optimum (the beta block of the information; normal intervals as fit_its' sarimax)."""
    S, T = Y.shape

    def loglik(r):
        _, _, ssr = _prais_winsten(X, Y, r)
        return -T / 2 * np.log(ssr / T) + 0.5 * np.log(1 - r ** 2)

    gr = (math.sqrt(5) - 1) / 2
    a, b = np.full(S, -0.99), np.full(S, 0.99)
    c, d = b - gr * (b - a), a + gr * (b - a)
    fc, fd = loglik(c), loglik(d)
    for _ in range(iters):
        left = fc > fd                      # maximum in [a, d], else in [c, b]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        nc = np.where(left, b - gr * (b - a), d)
        nd = np.where(left, c, a + gr * (b - a))
        fe = loglik(np.where(left, nc, nd))
        fc, fd = np.where(left, fe, fd), np.where(left, fc, fe)
        c, d = nc, nd
    rho = (a + b) / 2
    beta, inv, ssr = _prais_winsten(X, Y, rho)
    return beta, np.sqrt((ssr / T)[:, None] * np.einsum("spp->sp", inv))


# --------------------------------------------------------------------------------------------
# Degrees of freedom of the controlled ITS
# --------------------------------------------------------------------------------------------
def satterthwaite_df(variances: Sequence[float], dfs: Sequence[float]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates:
    (sum v)^2 / sum(v^2 / df) (Satterthwaite 1946)."""
    v = np.asarray(variances, float)
    d = np.asarray(dfs, float)
    if v.shape != d.shape or (d <= 0).any() or (v < 0).any():
        raise CareTrendsError("give one non-negative variance and one positive df per component")
    denom = float((v ** 2 / d).sum())
    return float(v.sum() ** 2 / denom) if denom > 0 else float(d.min())


def controlled_its_df(n_treated: int, n_params: int, *, n_control: int | None = None,
                      var_treated: float | None = None, var_control: float | None = None) -> float:
    """Degrees of freedom for the treated-minus-comparator effects of the multiple-group controlled
    ITS, where each group has its own coefficients (n_params in total, half per group) and its own
    quasi-Poisson dispersion. The effect's variance is phi_T V_T + phi_C V_C; each dispersion is
    estimated on its own group's n - n_params/2 residuals, so the right t reference has the
    Satterthwaite df of the two parts, which is n_treated - n_params/2 when the comparator's part
    is negligible (a comparator summed over many LAs), not the pooled 2n - n_params.

    var_treated / var_control: the two variance components of the effect (phi_g times the
    unscaled variance); without them the treated group's df is returned."""
    n_control = n_treated if n_control is None else n_control
    if n_params % 2:
        raise CareTrendsError("the multiple-group model has the same terms in each group; "
                              "n_params must be even")
    df_t = n_treated - n_params / 2
    df_c = n_control - n_params / 2
    if df_t < 1 or df_c < 1:
        raise CareTrendsError(f"{n_treated} points cannot estimate {n_params // 2} terms per group "
                              "and a dispersion; declare fewer effects")
    if var_treated is None or var_control is None:
        return float(df_t)
    return satterthwaite_df([var_treated, var_control], [df_t, df_c])
