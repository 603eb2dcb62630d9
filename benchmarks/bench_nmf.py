"""Time for each NMF method to reach the same objective, side by side in one run.

Data: a 2000 x 1000 nonnegative matrix (rank 20 plus noise), k = 20, NNDSVDa start for
every method. First every method runs for a fixed budget of iterations while its
objective is recorded after each one (scikit-learn's solvers are continued one iteration
at a time from their own factors, which is the same iteration). Two targets follow:

- "common": the worst of the methods' best objectives, which every method reaches;
- "best + 1%": within 1% of the best objective found by any method.

For each method and target we take the number of iterations it needed and time one
complete call with exactly that many iterations (best of 3, initialization included).
Nothing here asserts a time. Run: ``python benchmarks/bench_nmf.py`` (a few minutes).
"""

from __future__ import annotations

import platform
import time
import warnings

import numpy as np
import sklearn
from sklearn.decomposition import NMF

import nnmf_lib
from nnmf_lib import initialize, nmf

BUDGET = {"mu": 1500, "hals": 500, "anls": 100, "cd": 500}


def best_of(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sklearn_history(X, k, solver, n_iter):
    """Objective after each iteration of scikit-learn's solver, from NNDSVDa."""
    A0, S0 = initialize(X, k, "nndsvda")
    W, H = S0.T.copy(), A0.T.copy()  # scikit-learn's factors: X^T ~ W H
    history = [np.linalg.norm(X.T - W @ H) ** 2]
    for _ in range(n_iter):
        model = NMF(k, init="custom", solver=solver, max_iter=1, tol=0)
        W = model.fit_transform(X.T, W=W, H=H)
        H = model.components_
        history.append(np.linalg.norm(X.T - W @ H) ** 2)
    return np.array(history)


def sklearn_run(X, k, solver, n_iter):
    model = NMF(k, init="nndsvda", solver=solver, max_iter=n_iter, tol=0)
    model.fit_transform(X.T)


def main():
    warnings.simplefilter("ignore")  # fixed-iteration runs warn by design
    print(
        f"nnmf_lib {nnmf_lib.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}"
    )
    rng = np.random.default_rng(0)
    N, M, k = 2000, 1000, 20
    X = rng.random((N, k)) @ rng.random((k, M)) + 0.5 * rng.random((N, M))

    histories, runners = {}, {}
    for method in ("mu", "hals", "anls"):
        histories[f"nnmf_lib {method}"] = nmf(
            X, k, method=method, max_iter=BUDGET[method], tol=0
        ).objective
        runners[f"nnmf_lib {method}"] = lambda n, m=method: nmf(
            X, k, method=m, max_iter=max(n, 1), tol=0
        )
    for solver, budget in (("cd", BUDGET["cd"]), ("mu", BUDGET["mu"])):
        name = f"scikit-learn {solver}"
        histories[name] = sklearn_history(X, k, solver, budget)
        runners[name] = lambda n, s=solver: sklearn_run(X, k, s, max(n, 1))

    f_best = min(h.min() for h in histories.values())
    targets = {
        "common": max(h.min() for h in histories.values()),
        "best + 1%": 1.01 * f_best,
    }
    print(
        f"X {N}x{M}, k = {k}; best objective {f_best:.6g} (relative error "
        f"{np.sqrt(f_best) / np.linalg.norm(X):.4f})"
    )
    for label, target in targets.items():
        print(f"\ntarget '{label}': objective <= {target:.6g}")
        print(f"{'method':<20} {'iterations':>10} {'seconds':>9} {'x fastest':>10}")
        rows = []
        for name, history in histories.items():
            reached = np.flatnonzero(history <= target)
            if reached.size == 0:
                rows.append((name, None, None))
                continue
            n = int(reached[0])
            rows.append((name, n, best_of(lambda r=runners[name], n=n: r(n))))
        fastest = min(r[2] for r in rows if r[2] is not None)
        for name, n, seconds in rows:
            if n is None:
                budget = len(histories[name]) - 1
                print(f"{name:<20} {'not reached in ' + str(budget):>21}")
            else:
                print(f"{name:<20} {n:>10d} {seconds:>9.2f} {seconds / fastest:>9.1f}x")


if __name__ == "__main__":
    main()
