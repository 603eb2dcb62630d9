"""Speed of nnmf_lib.nnls against a loop of scipy.optimize.nnls and against cvxpy.

All timings are measured side by side in this one run and printed as ratios; nothing
here asserts a time. Run with ``python benchmarks/bench_nnls.py`` (about a minute).
"""

from __future__ import annotations

import platform
import time

import cvxpy as cp
import numpy as np
import scipy
import scipy.optimize

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


def main():
    print(
        f"nnmf_lib {nnmf_lib.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, cvxpy {cp.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(
        f"{'problem':<38} {'reference':<12} {'nnls ms':>9} {'ref ms':>10} {'ratio':>9}"
        f"   {'max diff':>8}  {'KKT':>8}  {'supp.':>6}"
    )
    rng = np.random.default_rng(0)
    # The reference shape: A 2000 x 20, X = rand(2000,15) rand(15,1000) + noise.
    A = rng.random((2000, 20))
    X = rng.random((2000, 15)) @ rng.random((15, 1000)) + 0.1 * rng.random((2000, 1000))
    compare(
        "A 2000x20, X 2000x1000 (low rank+noise)", A, X, scipy_loop, "scipy loop", 3
    )
    # A harder case for grouping: sparse solutions with a different support per column.
    A = rng.random((300, 20)) ** 3
    X = rng.random((300, 2000)) ** 2
    compare("A 300x20, X 300x2000 (varied supports)", A, X, scipy_loop, "scipy loop", 3)
    # cvxpy on a smaller problem (it builds one large quadratic program).
    A = rng.random((200, 20))
    X = rng.random((200, 15)) @ rng.random((15, 200)) + 0.1 * rng.random((200, 200))
    compare("A 200x20, X 200x200", A, X, cvxpy_solve, "cvxpy OSQP", 1)


if __name__ == "__main__":
    main()
