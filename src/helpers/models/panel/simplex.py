"""Least squares over the probability simplex, the weight problem inside synthetic control and
synthetic difference-in-differences.

    minimise ||A w - b||^2 + ridge * ||w||^2   subject to  w >= 0,  sum(w) = 1,

optionally with a free intercept (A's columns and b centred first, which profiles the intercept
out exactly). Solved exactly by a primal active-set method (Lawson & Hanson 1974, ch. 23,
adapted to the simplex: on the free set only sum(w) = 1 binds, so each step is one small
equality-constrained solve). With a ridge the free-set solve uses the Woodbury identity, so
its cost grows with the (few) rows, not the (many) columns - SDID's unit weights over ~150
donors stay fast.
"""

from __future__ import annotations

import numpy as np


def _face_solve(A: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """argmin ||A z - b||^2 + ridge ||z||^2 subject to sum(z) = 1 only (signs free)."""
    k = A.shape[1]
    if k == 1:
        return np.ones(1)
    if ridge < 1e-6:  # (tiny ridge: Woodbury would divide by it) stack sqrt(ridge) I under A,
        # substitute z_0 = 1 - sum(z_1..) and solve the unconstrained least squares
        if ridge > 0:
            A = np.vstack([A, np.sqrt(ridge) * np.eye(k)])
            b = np.concatenate([b, np.zeros(k)])
        base = A[:, 0]
        rest = np.linalg.lstsq(A[:, 1:] - base[:, None], b - base, rcond=None)[0]
        return np.concatenate([[1.0 - rest.sum()], rest])
    # Stationarity (A'A + ridge I) z = A'b + mu 1 with 1'z = 1; the inverse by Woodbury through
    # the small rows x rows system, so a step costs O(k rows^2) however many columns are free.
    small = ridge * np.eye(A.shape[0]) + A @ A.T

    def h_inv(v):
        return (v - A.T @ np.linalg.solve(small, A @ v)) / ridge

    z0 = h_inv(A.T @ b)
    z1 = h_inv(np.ones(k))
    return z0 + (1.0 - z0.sum()) / z1.sum() * z1


def simplex_least_squares(A, b, *, ridge: float = 0.0, intercept: bool = False,
                          tol: float = 1e-12, max_iter: int | None = None) -> np.ndarray:
    """Weights w (length = columns of A) minimising ||A w - b||^2 + ridge ||w||^2 on the simplex.

    `intercept=True` adds a free constant to the fit (A's columns and b are centred first).
    When several weightings fit equally well (a target inside the columns' convex hull, no
    ridge) a sparse vertex solution is returned; a positive ridge makes the solution unique.
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float).ravel()
    if A.ndim != 2 or A.shape[0] != b.shape[0]:
        raise ValueError(f"A must be (rows, k) with rows = len(b) = {b.shape[0]}; got {A.shape}")
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError("simplex_least_squares needs finite inputs")
    if ridge < 0:
        raise ValueError("ridge must be non-negative")
    k = A.shape[1]
    if k == 1:
        return np.ones(1)
    if intercept:
        A = A - A.mean(axis=0, keepdims=True)
        b = b - b.mean()
    scale = max(float(np.abs(A).max()), float(np.abs(b).max()), 1e-300)
    A, b, ridge = A / scale, b / scale, ridge / scale ** 2  # the minimiser is scale-invariant
    gtol = tol * max(1.0, A.shape[0], ridge)
    w = np.zeros(k)
    start = int(np.argmin(((A - b[:, None]) ** 2).sum(axis=0) + ridge))  # best single column
    w[start] = 1.0
    free = np.zeros(k, dtype=bool)
    free[start] = True
    stuck = np.zeros(k, dtype=bool)  # columns that could not enter at a degenerate vertex
    for _ in range(max_iter or 20 * k + 100):
        grad = A.T @ (A @ w - b) + ridge * w
        level = grad[free].min()  # the multiplier of sum(w) = 1 on the free set
        candidates = np.where(free | stuck, np.inf, grad)
        enter = int(np.argmin(candidates))
        if not candidates[enter] < level - gtol:
            break  # KKT: no fixed column would lower the objective
        free[enter] = True
        for _inner in range(k + 1):
            idx = np.flatnonzero(free)
            z = _face_solve(A[:, idx], b, ridge)
            if (z > 0).all():
                w[:] = 0.0
                w[idx] = z
                break
            current = w[idx]
            blocking = z <= 0
            step = float(np.min(current[blocking] / (current[blocking] - z[blocking])))
            moved = current + step * (z - current)
            leave = idx[blocking & (moved <= 1e-15)] if step > 0 else idx[blocking]
            if step == 0 and enter in leave:
                stuck[enter] = True
            w[:] = 0.0
            w[idx] = moved
            w[leave] = 0.0
            free[leave] = False
            if not free.any():  # numerical corner: fall back to the best vertex
                free[start] = True
                w[:] = 0.0
                w[start] = 1.0
                break
        stuck &= ~free
    w = np.clip(w, 0.0, None)
    return w / w.sum()
