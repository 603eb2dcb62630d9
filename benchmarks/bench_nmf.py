"""Time for each NMF method to reach the same objective, side by side in one run.

Data: a 2000 x 1000 nonnegative matrix (rank 20 plus noise), k = 20, NNDSVDa start for
every method. Each nnmf_lib method runs once for a fixed budget of iterations and
records its objective and the elapsed time after every iteration. scikit-learn does
not record a history, so it runs once per iteration count of a doubling grid (10, 20,
40, ...) and each run is timed; the time it needs for a target is that of the first
grid run that reaches it (an upper bound: at most twice the iterations needed).
Two targets:

- "common": the worst of the methods' best objectives, which every method reaches;
- "best + 1%": within 1% of the best objective found by any method.

All timings use one BLAS thread (set ``NNMF_BENCH_THREADS`` to change that): on a
shared machine, threaded BLAS made the same product vary tenfold within one run.
Nothing here asserts a time. Run: ``python benchmarks/bench_nmf.py`` (about a minute).
"""

from __future__ import annotations

import os
import platform
import time
import warnings

import numpy as np
import sklearn
import threadpoolctl
from sklearn.decomposition import NMF

import nnmf_lib
from nnmf_lib import nmf

BUDGET = {"mu": 400, "hals": 200, "anls": 60}
SKLEARN_GRID = {"cd": [10, 20, 40, 80, 160], "mu": [25, 50, 100, 200, 400]}


def library_history(X, k, method):
    """(objective, seconds) after every iteration of one run of nnmf_lib's nmf."""
    start = time.perf_counter()
    res = nmf(X, k, method=method, max_iter=BUDGET[method], tol=0)
    setup = time.perf_counter() - start - res.elapsed[-1]  # initialization
    return res.objective, setup + res.elapsed


def sklearn_history(X, k, solver):
    """(objective, seconds) of scikit-learn runs with the grid's iteration counts."""
    objective, seconds = [], []
    for n in SKLEARN_GRID[solver]:
        model = NMF(k, init="nndsvda", solver=solver, max_iter=n, tol=0)
        start = time.perf_counter()
        W = model.fit_transform(X.T)  # scikit-learn's orientation: X^T ~ W H
        seconds.append(time.perf_counter() - start)
        objective.append(np.linalg.norm(X.T - W @ model.components_) ** 2)
    return np.array(objective), np.array(seconds)


def main():
    threads = int(os.environ.get("NNMF_BENCH_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        run()


def run():
    warnings.simplefilter("ignore")  # fixed-iteration runs warn by design
    start = time.perf_counter()
    print(
        f"nnmf_lib {nnmf_lib.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rng = np.random.default_rng(0)
    N, M, k = 2000, 1000, 20
    X = rng.random((N, k)) @ rng.random((k, M)) + 0.5 * rng.random((N, M))

    runs = {f"nnmf_lib {m}": library_history(X, k, m) for m in BUDGET}
    runs.update({f"scikit-learn {s}": sklearn_history(X, k, s) for s in SKLEARN_GRID})

    f_best = min(obj.min() for obj, _ in runs.values())
    targets = {
        "common": max(obj.min() for obj, _ in runs.values()),
        "best + 1%": 1.01 * f_best,
    }
    print(
        f"X {N}x{M}, k = {k}; best objective {f_best:.6g} (relative error "
        f"{np.sqrt(f_best) / np.linalg.norm(X):.4f})"
    )
    for label, target in targets.items():
        print(f"\ntarget '{label}': objective <= {target:.6g}")
        print(f"{'method':<20} {'seconds':>9} {'x fastest':>10}")
        reached = {}
        for name, (objective, seconds) in runs.items():
            hit = np.flatnonzero(objective <= target)
            reached[name] = seconds[hit[0]] if hit.size else None
        fastest = min(t for t in reached.values() if t is not None)
        for name, t in reached.items():
            if t is None:
                print(f"{name:<20} {'not reached':>9}")
            else:
                print(f"{name:<20} {t:9.2f} {t / fastest:9.1f}x")
    print(f"\n(this benchmark ran in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
