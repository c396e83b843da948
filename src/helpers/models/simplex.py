"""The one simplex-constrained least-squares solver every weighting design uses (synthetic
control, synthetic DiD unit and time weights, covariate synthetic control):

    argmin_w ||A w - b||^2 + ridge ||w||^2,   w >= 0, sum(w) = 1

solved exactly by a Lawson-Hanson style primal active-set method adapted to the simplex: keep a
passive set of positive weights, solve the equality-constrained least squares on it, step back to
feasibility when a weight would go negative, and add the column whose gradient most violates the
KKT conditions until none does. A ridge penalty is the same problem on A stacked over
sqrt(ridge) I (and b over zeros), solved without building that tall matrix: each step's
equality-constrained problem is then a small bordered (KKT) linear system in the passive
weights, when the penalty keeps it well conditioned (as synthetic DiD's unit weights do), else
a least-squares solve of the stacked rows that matter. An intercept centres A's columns and b
first.
"""

from __future__ import annotations

import numpy as np


#: A ridge step is solved through its KKT system when the penalty bounds the condition number
#: of the passive Gram matrix by about this much (errors ~ this x machine epsilon), else by
#: least squares on the stacked rows.
_KKT_CONDITION = 1e6


def _affine_ls(a: np.ndarray, B: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """argmin_z ||a - B z||^2 + ridge ||z||^2 subject to sum(z) = 1 (no sign constraint): by
    eliminating z_0, or (ridge) through the bordered system [[B'B + ridge I, 1], [1', 0]]."""
    p = B.shape[1]
    if p == 1:
        return np.ones(1)
    if ridge > 0:
        gram = B.T @ B
        if gram.trace() < _KKT_CONDITION * ridge:
            kkt = np.empty((p + 1, p + 1))
            kkt[:p, :p] = gram
            kkt[np.arange(p), np.arange(p)] += ridge
            kkt[p, :p] = kkt[:p, p] = 1.0
            kkt[p, p] = 0.0
            return np.linalg.solve(kkt, np.concatenate([B.T @ a, [1.0]]))[:p]
        # the penalty rows sqrt(ridge) I of the passive weights (those of the others are zero)
        B = np.vstack([B, np.sqrt(ridge) * np.eye(p)])
        a = np.concatenate([a, np.zeros(p)])
    b0 = B[:, 0]
    y = np.linalg.lstsq(B[:, 1:] - b0[:, None], a - b0, rcond=None)[0]
    return np.concatenate([[1.0 - y.sum()], y])


def synth_weights(treated_pre: np.ndarray, donors_pre: np.ndarray, v: np.ndarray | None = None,
                  *, ridge: float = 0.0, tol: float = 1e-10,
                  max_iter: int | None = None) -> np.ndarray:
    """Synthetic-control weights: argmin_w (a - B w)' diag(v) (a - B w) + ridge ||w||^2,
    w >= 0, sum(w) = 1 (`ridge` as if sqrt(ridge) I were stacked under B and zeros under a).

    `treated_pre` is the treated unit's pre-period predictors (T,), `donors_pre` the donors' (T, J),
    `v` optional non-negative predictor weights (T,), default all equal. Solved exactly by a
    Lawson-Hanson style primal active-set method adapted to the simplex: keep a passive set of
    positive weights, solve the equality-constrained least squares on it, step back to feasibility
    when a weight would go negative, and add the donor whose gradient most violates the KKT
    conditions until none does. Each step is one small least-squares solve, so a solve with ~150
    donors and ~10 pre-period years takes well under a millisecond-scale loop of a few iterations.
    When the treated unit lies inside the donors' convex hull the weights need not be unique
    (the fitted path is); the solver returns a sparse vertex solution.
    """
    a = np.asarray(treated_pre, dtype=float).ravel()
    B = np.asarray(donors_pre, dtype=float)
    if B.ndim != 2 or B.shape[0] != a.shape[0]:
        raise ValueError(f"donors_pre must be (T, J) with T = {a.shape[0]}; got {B.shape}")
    if not (np.isfinite(a).all() and np.isfinite(B).all()):
        raise ValueError("synth_weights needs finite pre-period values")
    T, J = B.shape
    if v is not None:
        v = np.asarray(v, dtype=float).ravel()
        if v.shape != (T,) or (v < 0).any():
            raise ValueError("v must be (T,) and non-negative")
        s = np.sqrt(v)
        a, B = a * s, B * s[:, None]
    if ridge < 0:
        raise ValueError("ridge must be non-negative")
    scale = max(float(np.abs(B).max()), float(np.abs(a).max()), float(np.sqrt(ridge)), 1e-300)
    a, B = a / scale, B / scale  # the weights are invariant to a common scale
    ridge = ridge / scale ** 2
    if J == 1:
        return np.ones(1)
    tol_g = tol * max(1.0, T + (J if ridge > 0 else 0))  # rows of the stacked problem
    w = np.zeros(J)
    k = int(np.argmin(((B - a[:, None]) ** 2).sum(axis=0)))  # best single donor
    w[k] = 1.0
    passive = np.zeros(J, dtype=bool)
    passive[k] = True
    max_iter = max_iter or 10 * J + 50
    blocked = np.zeros(J, dtype=bool)  # donors that could not enter (numerical degeneracy)
    for _ in range(max_iter):
        g = B.T @ (B @ w - a) + ridge * w
        g_p = g[passive].min()
        cand = np.where(passive | blocked, np.inf, g)
        j = int(np.argmin(cand))
        if not cand[j] < g_p - tol_g:
            break
        passive[j] = True
        for _inner in range(J + 1):
            idx = np.flatnonzero(passive)
            z = _affine_ls(a, B[:, idx], ridge)
            if (z > 0).all():
                w[:] = 0.0
                w[idx] = z
                break
            wi = w[idx]
            neg = z <= 0
            alpha = float(np.min(wi[neg] / (wi[neg] - z[neg])))
            new = wi + alpha * (z - wi)
            drop = idx[(new <= 1e-15) & neg] if alpha > 0 else idx[neg]
            if alpha == 0 and j in drop:
                blocked[j] = True  # entering donor cannot move: skip it (degenerate vertex)
            w[:] = 0.0
            w[idx] = new
            w[drop] = 0.0
            passive[drop] = False
            if not passive.any():  # cannot happen in exact arithmetic; recover the best vertex
                passive[k] = True
                w[:] = 0.0
                w[k] = 1.0
                break
        else:  # pragma: no cover
            break
        blocked &= ~passive
    w = np.clip(w, 0.0, None)
    return w / w.sum()


def simplex_least_squares(A, b, *, ridge: float = 0.0, intercept: bool = False,
                          tol: float = 1e-10, max_iter: int | None = None) -> np.ndarray:
    """Weights w (length = columns of A) minimising ||A w - b||^2 + ridge ||w||^2 on the simplex.

    `intercept=True` adds a free constant to the fit (A's columns and b are centred first).
    When several weightings fit equally well (a target inside the columns' convex hull, no
    ridge) a sparse vertex solution is returned; a positive ridge makes the solution unique.
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float).ravel()
    if A.ndim != 2 or A.shape[0] != b.shape[0]:
        raise ValueError(f"A must be (rows, k) with rows = len(b) = {b.shape[0]}; got {A.shape}")
    if ridge < 0:
        raise ValueError("ridge must be non-negative")
    if intercept:
        A = A - A.mean(axis=0, keepdims=True)
        b = b - b.mean()
    return synth_weights(b, A, ridge=ridge, tol=tol, max_iter=max_iter)
