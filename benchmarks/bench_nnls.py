"""Speed and exactness of nnmf_lib.nnls, measured side by side in one run.

1. Against a loop of scipy.optimize.nnls (the bench shape, and varied supports) and
   against cvxpy, with the ratio of nnls to its floor: one Cholesky solve of
   ``A^T A S = A^T X`` for all columns (products included), what a single support costs.
2. Exactness at any conditioning: dictionaries with nearly dependent topics
   (condition numbers about 1e4, 1e6, 1e8) and data in or near their cone (noise 0 to
   1e-3); the worst KKT residual over 10 seeds next to scipy's, the objective gap to
   scipy's in the worst column (relative to the column's norm squared and to its
   objective), and the number of columns whose gap exceeds 1e-10 of the objective plus
   the rounding of the two objectives.
3. The rank sweep: A of 20000 x k, X of 20000 x 2000 near the cone (half the topics
   active per column), k from 25 to 400; the time should grow no faster than the k^3
   of the dense solves (at most 8 times from k to 2k).

All timings use one BLAS thread (set ``NNMF_BENCH_THREADS`` to change that): on a
shared machine, threaded BLAS made the same product vary tenfold within one run.
Nothing here asserts a time. Run with ``python benchmarks/bench_nnls.py`` (about a
minute on a quiet machine).
"""

from __future__ import annotations

import os
import platform
import time
import warnings

import cvxpy as cp
import numpy as np
import scipy
import scipy.linalg
import scipy.optimize
import threadpoolctl

import nnmf_lib
from nnmf_lib import kkt_residual, nnls


def best_of(fn, repeat):
    """Best wall-clock time of ``repeat`` calls, and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def scipy_loop(A, X):
    return np.column_stack([scipy.optimize.nnls(A, x)[0] for x in X.T])


def cvxpy_solve(A, X):
    S = cp.Variable((A.shape[1], X.shape[1]), nonneg=True)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X - A @ S)))
    problem.solve(
        solver=cp.OSQP, eps_abs=1e-8, eps_rel=1e-8, polishing=True, max_iter=200_000
    )
    return S.value


def cholesky_floor(A, X):
    """The least squares on one support (all topics): Gram products, one Cholesky."""
    return scipy.linalg.cho_solve(scipy.linalg.cho_factor(A.T @ A), A.T @ X)


def compare(name, A, X, reference, ref_name, repeat_ref):
    t_lib, S = best_of(lambda: nnls(A, X), repeat=7)
    t_ref, S_ref = best_of(lambda: reference(A, X), repeat=repeat_ref)
    diff = np.abs(S - S_ref).max() / np.abs(S_ref).max()
    supports = len({tuple(c) for c in (S > 0).T})
    print(
        f"{name:<38} {ref_name:<12} {t_lib * 1e3:9.1f} {t_ref * 1e3:10.1f} "
        f"{t_ref / t_lib:8.1f}x   {diff:8.1e}  {kkt_residual(A, X, S):8.1e}  "
        f"{supports:6d}"
    )
    return t_lib


def speed():
    print(
        f"{'problem':<38} {'reference':<12} {'nnls ms':>9} {'ref ms':>10} {'ratio':>9}"
        f"   {'max diff':>8}  {'KKT':>8}  {'supp.':>6}"
    )
    rng = np.random.default_rng(0)
    # The bench shape: A 2000 x 20, X = rand(2000,15) rand(15,1000) + noise.
    A = rng.random((2000, 20))
    X = rng.random((2000, 15)) @ rng.random((15, 1000)) + 0.1 * rng.random((2000, 1000))
    name = "A 2000x20, X 2000x1000 (low rank+noise)"
    t_lib = compare(name, A, X, scipy_loop, "scipy loop", 3)
    t_floor, _ = best_of(lambda: cholesky_floor(A, X), 7)
    print(
        f"{'  floor: one Cholesky solve, all columns':<38} {'':<12} {t_lib * 1e3:9.1f} "
        f"{t_floor * 1e3:10.1f}   nnls / floor = {t_lib / t_floor:.1f}"
    )
    # A harder case for grouping: sparse solutions with a different support per column.
    A = rng.random((300, 20)) ** 3
    X = rng.random((300, 2000)) ** 2
    compare("A 300x20, X 300x2000 (varied supports)", A, X, scipy_loop, "scipy loop", 3)
    # cvxpy on a smaller problem (it builds one large quadratic program).
    A = rng.random((200, 20))
    X = rng.random((200, 15)) @ rng.random((15, 200)) + 0.1 * rng.random((200, 200))
    compare("A 200x20, X 200x200", A, X, cvxpy_solve, "cvxpy OSQP", 1)


def ill_conditioned(cond, seed, noise, N=60, k=8, M=120):
    """Two nearly dependent pairs of topics, data near (noise 0: in) the cone."""
    rng = np.random.default_rng(seed)
    A = rng.random((N, k))
    A[:, 7] = A[:, 6] + rng.random(N) * 8 / cond
    A[:, 5] = A[:, 4] + rng.random(N) * 80 / cond
    S = rng.random((k, M)) * (rng.random((k, M)) < 0.6)
    return A, A @ S + noise * rng.random((N, M))


def exactness():
    print(
        "\nIll-conditioned dictionaries, data in or near the cone (10 seeds each, "
        "60 x 8, 120 columns); f: a column's objective, each gap the largest over the "
        "columns;"
        "\nover: columns with f - f_scipy > 1e-10 f_scipy + 4 (k + 1) eps ||r|| ||x||"
        " (the rounding of the two objectives, r scipy's residual)"
    )
    print(
        f"{'cond(A)':>9} {'noise':>7} {'KKT nnls':>9} {'KKT scipy':>10} "
        f"{'(f-f_scipy)/|x|^2':>18} {'(f-f_scipy)/f':>14} {'over':>5} "
        f"{'nnls ms':>8} {'scipy ms':>9}"
    )
    for target in (1e4, 1e6, 1e8):
        for noise in (0.0, 1e-10, 1e-8, 1e-6, 1e-3):
            kkt, kkt_ref, t, t_ref, conds, over = 0, 0, 0, 0, [], 0
            gap = rel_gap = -np.inf  # the largest over the columns (may be < 0)
            for seed in range(10):
                A, X = ill_conditioned(target, seed, noise)
                conds.append(np.linalg.cond(A))
                dt, S = best_of(lambda A=A, X=X: nnls(A, X), 1)
                dt_ref, S_ref = best_of(lambda A=A, X=X: scipy_loop(A, X), 1)
                f = np.sum((X - A @ S) ** 2, axis=0)  # column by column
                f_ref = np.sum((X - A @ S_ref) ** 2, axis=0)
                kkt = max(kkt, kkt_residual(A, X, S))
                kkt_ref = max(kkt_ref, kkt_residual(A, X, S_ref))
                norm2 = np.sum(X**2, axis=0)
                gap = max(gap, np.max((f - f_ref) / norm2))
                rounding = 4 * (A.shape[1] + 1) * np.finfo(float).eps
                rounding *= np.sqrt(f_ref * norm2)
                over += int(np.sum(f - f_ref > 1e-10 * f_ref + rounding))
                rel_gap = max(rel_gap, np.max((f - f_ref) / f_ref) if noise else 0.0)
                t, t_ref = t + dt, t_ref + dt_ref
            rel = f"{rel_gap:14.1e}" if noise else f"{'(f ~ 0)':>14}"
            print(
                f"{np.median(conds):9.1e} {noise:7.0e} {kkt:9.1e} {kkt_ref:10.1e} "
                f"{gap:18.1e} {rel} {over if noise else '-':>5} {t * 100:8.1f} "
                f"{t_ref * 100:9.1f}"
            )


def rank_sweep(N=20_000, M=2000):
    print(f"\nRank sweep: A {N} x k, X {N} x {M} = A S + noise, S half full")
    print(f"{'k':>5} {'seconds':>9} {'x previous':>11} {'sweeps':>7} {'KKT':>9}")
    rng = np.random.default_rng(1)
    previous = None
    for k in (25, 50, 100, 200, 400):
        A = rng.random((N, k))
        S = rng.random((k, M)) * (rng.random((k, M)) < 0.5)
        X = A @ S + 0.01 * rng.random((N, M))
        t, (S, info) = best_of(lambda A=A, X=X: nnls(A, X, return_info=True), 1)
        growth = "" if previous is None else f"{t / previous:10.1f}x"
        print(f"{k:5d} {t:9.2f} {growth:>11} {info.n_iter:7d} {info.kkt_residual:9.1e}")
        previous = t


def main():
    threads = int(os.environ.get("NNMF_BENCH_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        run()


def run():
    start = time.perf_counter()
    warnings.simplefilter("ignore")
    print(
        f"nnmf_lib {nnmf_lib.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, cvxpy {cp.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    speed()
    exactness()
    rank_sweep()
    print(f"\n(this benchmark ran in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
