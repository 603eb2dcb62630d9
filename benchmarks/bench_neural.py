"""Time per Neural NMF epoch, side by side in one run, at two scales.

1. The book's small problems: the paper's 87 x 90 data with ranks [9], [9, 4] and
   [9, 4, 2], against the published implementation (the ``NeuralNMF`` package on PyPI,
   version 1.0.0, PyTorch; one epoch = forward pass with scipy.optimize.nnls per
   column, backward pass with a pseudoinverse per column, a gradient step). It runs in
   its own Python, in a separate environment that is never a dependency of this
   project. Create it once (CPU build of torch; the package's ``fnnls`` dependency
   needs NumPy < 1.24)::

       python3 -m venv /work/bench-neuralnmf
       /work/bench-neuralnmf/bin/pip install torch==2.13.0 "numpy<1.24" NeuralNMF==1.0.0

   or point ``NEURALNMF_PYTHON`` at another interpreter that has it. Without it, this
   part prints how to create it and the rest still runs.
2. A 2000 x 1000 matrix with ranks [20, 10, 5]: each epoch of ``neural_nmf`` against
   the floor of its own large products (the N x M x k_0 products ``A^T X`` of each of
   its forward passes (``Q^T X`` for an ill-conditioned A: the same cost) and ``X H^T``
   of the gradient, each timed alone in the faster of its two memory layouts): the
   median of the per-epoch ratios, that median over the one-pass epochs, and all
   epochs together (total time over total floor). Then ``loss_and_grad``
   against a naive per-column implementation of the same mathematics (on 200 of the
   columns).

All timings use one BLAS thread (set ``NNMF_BENCH_THREADS`` to change that): on a
shared machine, threaded BLAS made the same product vary tenfold within one run.
Nothing here asserts a time. Run: ``python benchmarks/bench_neural.py`` (a minute).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import scipy.optimize
import threadpoolctl

import nnmf_lib
from nnmf_lib import hierarchical_blocks, hnmf, loss_and_grad, neural_nmf

PUBLISHED_PYTHON = os.environ.get(
    "NEURALNMF_PYTHON", "/work/bench-neuralnmf/bin/python"
)

# Runs in the separate environment: loads X and the A's, trains the published model
# for a number of epochs (plain gradient steps, as its train() does), prints s/epoch.
PUBLISHED_SCRIPT = textwrap.dedent(
    """
    import sys, time, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import torch
    from NeuralNMF import Neural_NMF, train
    torch.set_num_threads(int(sys.argv[3]))
    data = np.load(sys.argv[1])
    X = torch.from_numpy(data["X"])
    A = [data["A%d" % i] for i in range(len(data.files) - 1)]
    epochs = int(sys.argv[2])
    net = Neural_NMF([X.shape[0]] + [a.shape[1] for a in A])
    for layer, a in zip(net.lsqnonneglst, A):
        layer.A.data = torch.from_numpy(a.copy())
    times = []
    for _ in range(epochs + 1):  # one epoch per call: the median resists load spikes
        start = time.perf_counter()
        train(net, X, epoch=1, lr=1e-6, verbose=False)
        times.append(time.perf_counter() - start)
    print(np.median(times[1:]))
    """
)


def published_epoch(X, A, epochs):
    """Seconds per epoch of the published implementation, or None if unavailable."""
    if not Path(PUBLISHED_PYTHON).exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "problem.npz"
        np.savez(data, X=X, **{f"A{i}": a for i, a in enumerate(A)})
        script = Path(tmp) / "published.py"
        script.write_text(PUBLISHED_SCRIPT)
        threads = os.environ.get("NNMF_BENCH_THREADS", "1")
        out = subprocess.run(
            [PUBLISHED_PYTHON, str(script), str(data), str(epochs), threads],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "OPENBLAS_NUM_THREADS": threads},
        )
    if out.returncode != 0:
        print(out.stderr.strip().splitlines()[-1])
        return None
    return float(out.stdout.split()[-1])


def library_epochs(X, A, epochs):
    """Seconds of each epoch of neural_nmf (a gradient and the line search), and the
    number of forward passes (trial steps) each took. The passes are counted by
    wrapping the library's forward pass, as the Neural NMF chapter does."""
    passes, after_epoch = [0], []
    forward = nnmf_lib.neural._forward

    def counting_forward(*args, **kw):
        passes[0] += 1
        return forward(*args, **kw)

    nnmf_lib.neural._forward = counting_forward
    try:
        res = neural_nmf(
            X,
            [a.shape[1] for a in A],
            init=A,
            max_epochs=epochs,
            tol=0,
            callback=lambda *_: after_epoch.append(passes[0]) and False,
        )
    finally:
        nnmf_lib.neural._forward = forward
    return np.diff(res.elapsed), np.diff([1, *after_epoch])  # one pass before epoch 1


def library_epoch(X, A, epochs):
    """Seconds per epoch of neural_nmf: the median over the epochs, which resists
    load spikes, and the mean."""
    per_epoch, _ = library_epochs(X, A, epochs)
    return float(np.median(per_epoch)), float(per_epoch.mean())


def small_problems():
    print("\n1. The 87 x 90 data, ranks as in the book's experiments")
    X = hierarchical_blocks(random_state=0).X
    available = Path(PUBLISHED_PYTHON).exists()
    if not available:
        print(
            f"   (the published implementation is not installed at {PUBLISHED_PYTHON};"
        )
        print("    create it with the two commands in this script's docstring)")
    print(
        "   median ms per epoch (mean in parentheses); each side measured twice,"
        " alternately, and the faster median kept"
    )
    print(f"   {'ranks':<12} {'nnmf_lib':>17} {'published':>10} {'ratio':>8}")
    for ranks in ([9], [9, 4], [9, 4, 2]):
        A = hnmf(X, ranks, random_state=0).A
        lib, pub = [], []
        for _ in range(2):  # a load spike during one run does not decide the ratio
            lib.append(library_epoch(X, A, 300))
            pub.append(published_epoch(X, A, 30) if available else None)
        t_lib, mean = min(lib)
        t_pub = None if None in pub else min(pub)
        pub = "-" if t_pub is None else f"{t_pub * 1e3:10.2f}"
        ratio = "-" if t_pub is None else f"{t_pub / t_lib:7.1f}x"
        lib = f"{t_lib * 1e3:.3f} ({mean * 1e3:.3f})"
        print(f"   {ranks!s:<12} {lib:>17} {pub:>10} {ratio:>8}")


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


def large_problem():
    rng = np.random.default_rng(0)
    N, M, ranks = 2000, 1000, [20, 10, 5]
    print(f"\n2. X {N} x {M}, ranks {ranks}")
    X = rng.random((N, 20)) @ rng.random((20, M)) + 0.1 * rng.random((N, M))
    A = hnmf(X, ranks, max_iter=50, random_state=0).A  # realistic dictionaries
    epochs = 40
    # The floor of an epoch: its N x M x k_0 products, each timed alone in the faster
    # of its two layouts: A^T X once per forward pass (Q^T X for an ill-conditioned A
    # costs the same) and X H^T = (H X^T)^T once in the gradient. Timed before and
    # after the training, the faster of the two: the strictest floor.
    A0 = A[0] / np.linalg.norm(A[0], axis=0)
    H = rng.random((ranks[0], M))

    def products():
        fwd = min(best_of(lambda: A0.T @ X, 7)[0], best_of(lambda: (X.T @ A0).T, 7)[0])
        grad = min(best_of(lambda: X @ H.T, 7)[0], best_of(lambda: (H @ X.T).T, 7)[0])
        return np.array([fwd, grad])

    before = products()
    per_epoch, passes = library_epochs(X, A, epochs)
    t_fwd, t_grad = np.minimum(before, products())
    floor = passes * t_fwd + t_grad  # of each epoch
    one = passes == 1
    print(
        f"   neural_nmf, {epochs} epochs: {passes.mean():.2f} forward passes per epoch"
        f" (one in {one.sum()} of them); median epoch {np.median(per_epoch) * 1e3:.1f}"
        f" ms ({per_epoch.mean() * 1e3:.1f} mean)"
    )
    print(
        f"   floor: {t_fwd * 1e3:.1f} ms per A^T X (one per forward pass) + "
        f"{t_grad * 1e3:.1f} ms for X H^T"
    )
    ones = np.median(per_epoch[one] / floor[one]) if one.any() else np.nan
    print(
        "   epoch / floor of its own products: median "
        f"{np.median(per_epoch / floor):.2f} (one-pass epochs {ones:.2f}), "
        f"all epochs together {per_epoch.sum() / floor.sum():.2f}"
    )
    # The naive version takes minutes on all columns: compare on the first 200.
    X = X[:, :200]
    t_lib, (cost, grads, _) = best_of(lambda: loss_and_grad(A, X), repeat=5)
    t_naive, (cost_naive, grads_naive) = best_of(lambda: naive_epoch(A, X), repeat=1)
    diff = max(
        np.abs(g - h).max() / np.abs(h).max()
        for g, h in zip(grads, grads_naive, strict=True)
    )
    print("   on its first 200 columns (the naive version is slow):")
    print(f"   loss_and_grad (forward + gradient):        {t_lib * 1e3:8.1f} ms")
    print(
        f"   naive per-column implementation:           {t_naive * 1e3:8.1f} ms "
        f"({t_naive / t_lib:.0f}x); largest relative difference of the gradients "
        f"{diff:.1e}, costs {cost:.10g} vs {cost_naive:.10g}"
    )


def main():
    threads = int(os.environ.get("NNMF_BENCH_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        run()


def run():
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    print(
        f"nnmf_lib {nnmf_lib.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    small_problems()
    large_problem()
    print(f"\n(this benchmark ran in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
