"""Time per Neural NMF epoch (forward propagation plus exact gradient) on a 2000 x 1000
matrix with ranks [20, 10, 5], against a naive per-column implementation of the same
mathematics (the approach of the published implementation: scipy.optimize.nnls for each
column, and a pseudoinverse per column and layer in the backward pass).

Both are measured in this one run; the ratio is printed. Nothing here asserts a time.
Run: ``python benchmarks/bench_neural.py`` (about a minute).
"""

from __future__ import annotations

import platform
import time
import warnings

import numpy as np
import scipy
import scipy.optimize

import nnmf_lib
from nnmf_lib import hnmf, loss_and_grad, neural_nmf


def naive_epoch(A, X):
    """Cost (7) and its gradient, one column at a time (reference implementation)."""
    S, data = [], X
    for a in A:  # forward: one NNLS per column and layer
        data = np.column_stack([scipy.optimize.nnls(a, x)[0] for x in data.T])
        S.append(data)
    prefix = [np.eye(X.shape[0])]
    for a in A:
        prefix.append(prefix[-1] @ a)
    R = X - prefix[-1] @ S[-1]
    cost = float(np.sum(R**2))
    grads = []
    for i in range(len(A)):  # direct terms, with every S held fixed
        suffix = S[-1]
        for a in reversed(A[i + 1 :]):
            suffix = a @ suffix
        grads.append(-2 * prefix[i].T @ R @ suffix.T)
    g = -2 * prefix[-1].T @ R
    inputs = [X, *S[:-1]]
    for i in reversed(range(len(A))):  # backward: a pseudoinverse per column
        dX = np.zeros_like(inputs[i])
        for m in range(X.shape[1]):
            T = S[i][:, m] > 0
            pinv = np.linalg.pinv(A[i][:, T])
            d = pinv.T @ g[T, m]
            r = inputs[i][:, m] - A[i][:, T] @ S[i][T, m]
            grads[i][:, T] += np.outer(r, pinv @ d) - np.outer(d, S[i][T, m])
            dX[:, m] = d
        g = dX
    return cost, grads


def best_of(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    warnings.simplefilter("ignore")
    print(
        f"nnmf_lib {nnmf_lib.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, Python {platform.python_version()}"
    )
    rng = np.random.default_rng(0)
    N, M, ranks = 2000, 1000, [20, 10, 5]
    X = rng.random((N, 20)) @ rng.random((20, M)) + 0.1 * rng.random((N, M))
    A = hnmf(X, ranks, max_iter=50, random_state=0).A  # realistic dictionaries
    t_lib, (cost, grads, _) = best_of(lambda: loss_and_grad(A, X), repeat=7)
    t_naive, (cost_naive, grads_naive) = best_of(lambda: naive_epoch(A, X), repeat=1)
    diff = max(
        np.abs(g - h).max() / np.abs(h).max()
        for g, h in zip(grads, grads_naive, strict=True)
    )
    print(f"X {N}x{M}, ranks {ranks}")
    print(f"nnmf_lib.loss_and_grad (forward + gradient): {t_lib * 1e3:8.1f} ms")
    print(f"naive per-column implementation:             {t_naive * 1e3:8.1f} ms")
    print(
        f"ratio: {t_naive / t_lib:.1f}x; largest relative difference of the gradients "
        f"{diff:.1e}; costs {cost:.6g} vs {cost_naive:.6g}"
    )
    res = neural_nmf(X, ranks, init=A, max_epochs=20, tol=0)
    per_epoch = res.elapsed[-1] / res.n_epochs
    print(
        f"neural_nmf training epoch (gradient + line search), mean of 20: "
        f"{per_epoch * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
