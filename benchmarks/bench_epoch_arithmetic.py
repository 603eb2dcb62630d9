"""How close to the floor of its large products can a NumPy epoch of Neural NMF get?

``bench_neural.py`` compares each epoch of ``neural_nmf`` on a 2000 x 1000 matrix
(ranks [20, 10, 5]) with the floor of its large products: ``A^T X`` once per forward
pass and ``X H^T`` once. Here an epoch has one forward pass, so its floor is those two
products. The rest of the epoch is small dense work: the NNLS solves of three layers by
block principal pivoting, the vector-Jacobian products, the cost. This script times
that epoch (one forward pass, warm-started from the previous epoch's pass, the cost and
the gradient) at a point reached by training, next to the same mathematics written with
nothing but its arithmetic: no power-of-two scaling of the data (the topics are
normalized), no condition-number tests (so no QR path, no refinement, no SVD for
ill-conditioned supports), no KKT verification, polish or fallback, no reporting. That
version is not usable as a library (it is exact only on well-conditioned problems like
this one, and says nothing when it is not); it estimates how much of the gap to the
floor is the price of the library's guarantees and how much is NumPy itself (batched
small solves and passes over k x M arrays).

The solves are those of the library: each column's least squares on its support from
the inverse of the shared Gram matrix ``C`` (the q x q complement solves of
``nnmf_lib.nnls._complement_part``) for k = 20, and from one inverse per distinct
support (padded with the identity) for k <= 16. The pivoting is plain block principal
pivoting (one tolerance, 1e-12 of the column's scale; no backup rule). It prints the
largest difference between the two versions' S, gradients and cost. It uses the
library's private functions: it measures the library, it is not an example of its use.

One BLAS thread. Nothing here asserts a time. Run:
``python benchmarks/bench_epoch_arithmetic.py`` (half a minute).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import threadpoolctl

from nnmf_lib import forward, hnmf, neural_nmf
from nnmf_lib import neural as nn


def best_of(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def padded_solve(C, G, F):
    """``z_T = C_TT^-1 G_T`` column by column: one inverse per distinct support."""
    k = len(C)
    bits = np.int64(1) << np.arange(k, dtype=np.int64)
    codes, which = np.unique(bits @ F, return_inverse=True)
    patterns = (codes[:, None] & bits) != 0
    blocks = np.where(patterns[:, :, None] & patterns[:, None, :], C, 0.0)
    blocks[:, np.arange(k), np.arange(k)] += ~patterns
    P = np.linalg.inv(blocks)
    return np.where(F, np.einsum("mij,jm->im", P[which], np.where(F, G, 0.0)), 0.0)


def complement_solve(P, G, F):
    """The same through ``P = C^-1``: ``z = v - P_U (P_UU)^-1 v_U``, ``v = P G_T``,
    one batched q x q solve for the columns that miss q topics."""
    v = P @ np.where(F, G, 0.0)
    q = F.shape[0] - F.sum(axis=0)
    W = np.zeros_like(v)
    for size in np.unique(q[q > 0]):
        cols = np.flatnonzero(q == size)
        U = np.nonzero(~F[:, cols].T)[1].reshape(-1, size)
        w = np.linalg.solve(P[U[:, :, None], U[:, None, :]], v[U, cols[:, None], None])
        W[U, cols[:, None]] = w[:, :, 0]
    return np.where(F, v - P @ W, 0.0)


class Layer:
    """One layer's NNLS by block principal pivoting from the supports F, and its
    vector-Jacobian solve, with only the arithmetic."""

    def __init__(self, A, X, F):
        self.norms = np.linalg.norm(A, axis=0)
        unit = A / self.norms
        self.C, self.B = unit.T @ unit, unit.T @ X
        self.P = np.linalg.inv(self.C) if len(self.C) > 16 else None
        self.F = F.copy()
        x = self.pivot()
        self.S = x / self.norms[:, None]

    def solve(self, G, F):
        if self.P is None:
            return padded_solve(self.C, G, F)
        return complement_solve(self.P, G, F)

    def pivot(self):
        C, B, F = self.C, self.B, self.F
        tol = 1e-12 * np.abs(B).max(axis=0)
        x = self.solve(B, F)
        y = C @ x - B
        y[F] = 0.0
        for _ in range(50):
            V = (F & (x < -tol)) | (~F & (y < -tol))  # infeasible
            todo = V.any(axis=0)
            if not todo.any():
                break
            F[:, todo] ^= V[:, todo]
            x[:, todo] = self.solve(B[:, todo], F[:, todo])
            y[:, todo] = np.where(F[:, todo], 0.0, C @ x[:, todo] - B[:, todo])
        return np.where(F & (x > 0), x, 0.0)

    def vjp_solve(self, G):
        """``Z_T = (A_T^T A_T)^-1 G_T``."""
        return self.solve(G / self.norms[:, None], self.F) / self.norms[:, None]


def arithmetic_epoch(A, X, supports, norm_x2):
    """Forward pass, cost (7) by the Gram identity, and the exact gradient, for three
    layers, as in ``nnmf_lib.neural``."""
    layers, data = [], X
    for a, F in zip(A, supports, strict=True):
        layers.append(Layer(a, data, F))
        data = layers[-1].S
    S = [layer.S for layer in layers]
    Q = [A[1] @ (A[2] @ S[2]), A[2] @ S[2], S[2]]  # the suffixes; Y = Q[0]
    AtX = layers[0].B * layers[0].norms[:, None]
    GY = (A[0].T @ A[0]) @ Q[0]
    cost = norm_x2 - 2 * np.vdot(AtX, Q[0]) + np.vdot(GY, Q[0])
    grads, AtR = [None] * 3, AtX - GY
    for layer in (1, 2):  # direct terms
        grads[layer] = -2 * AtR @ Q[layer].T
        AtR = A[layer].T @ AtR
    g = -2 * AtR
    for layer in (2, 1):  # reverse sweep
        Z = layers[layer].vjp_solve(g)
        inner = S[layer] @ Z.T + Z @ S[layer].T
        grads[layer] = grads[layer] + S[layer - 1] @ Z.T - A[layer] @ inner
        g = A[layer] @ Z
    Z = layers[0].vjp_solve(g)
    inner = S[0] @ Z.T + Z @ S[0].T - 2 * (Q[0] @ Q[0].T)
    grads[0] = ((Z - 2 * Q[0]) @ X.T).T - A[0] @ inner
    return cost, grads, S


def main():
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    N, M, ranks = 2000, 1000, [20, 10, 5]
    X = rng.random((N, 20)) @ rng.random((20, M)) + 0.1 * rng.random((N, M))
    A = hnmf(X, ranks, max_iter=50, random_state=0).A
    seen = []  # the dictionaries after every epoch
    neural_nmf(
        X, ranks, init=A, max_epochs=21, tol=0,
        callback=lambda e, A, B, c: seen.append([a.copy() for a in A]) and False,
    )  # fmt: skip
    before, A = seen[19], seen[20]  # two consecutive epochs
    supports = [s > 0 for s in forward(before, X)]

    problem = nn._Problem.build(X, None, None, "reconstruction")
    previous = problem.forward(before)

    def library_epoch():
        layers = problem.forward(A, previous)
        fit = problem.cost(A, None, layers)
        grads, _, _ = nn._gradient(
            A, None, X, layers, None, None, "reconstruction", fit
        )
        return fit.cost, grads, [layer.S for layer in layers]

    def bare_epoch():
        return arithmetic_epoch(A, X, supports, problem.norm_x2)

    cost, grads, S = library_epoch()
    cost2, grads2, S2 = bare_epoch()
    pairs = [*zip(S2, S, strict=True), *zip(grads2, grads, strict=True)]
    diff = max(
        abs(cost2 - cost) / cost,
        *(np.abs(a - b).max() / np.abs(b).max() for a, b in pairs),
    )
    print(f"X {N} x {M}, ranks {ranks}, at epoch 21 of a run from the hNMF start")
    print(f"largest relative difference of S, gradients and cost: {diff:.1e}")
    A0 = A[0] / np.linalg.norm(A[0], axis=0)
    H = rng.random((ranks[0], M))
    print(f"{'':>4} {'library':>9} {'arithmetic':>11} {'floor':>7}  (ms)")
    for r in range(3):
        t_lib = best_of(library_epoch, 20)
        t_bare = best_of(bare_epoch, 20)
        floor = min(best_of(lambda: A0.T @ X, 7), best_of(lambda: (X.T @ A0).T, 7))
        floor += min(best_of(lambda: X @ H.T, 7), best_of(lambda: (H @ X.T).T, 7))
        print(
            f"{r + 1:>4} {t_lib * 1e3:9.2f} {t_bare * 1e3:11.2f} {floor * 1e3:7.2f}"
            f"   epoch / floor: library {t_lib / floor:.2f}, arithmetic only "
            f"{t_bare / floor:.2f}"
        )


if __name__ == "__main__":
    with threadpoolctl.threadpool_limits(1):
        main()
