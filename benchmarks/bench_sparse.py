"""Sparse term-document data, side by side in one run: time and memory of nnmf_lib,
time to a common objective against scikit-learn, and the dense path as the reference.

Data: a TF-IDF-like 50000 x 10000 matrix (terms x documents) with 0.2% nonzero entries,
generated with a fixed seed: 20 topics, each a Zipf law (exponent 1.1) over its own
random ordering of the vocabulary; each document mixes a few topics (Dirichlet 0.1) and
draws about 135 words; then TF-IDF weights (raw counts times ``1 + ln((1 + M) / (1 +
df))``, as scikit-learn's default) and unit-length documents.

1. Time to a common objective, k = 20, every method started from NNDSVDa: nnmf_lib's
   methods record their objective and time after every iteration; scikit-learn's "mu"
   reports its error every 10 iterations (``verbose``), and its "cd" runs with its
   defaults (``tol=1e-4``), whose final objective is the first target ("scikit-learn
   cd, default stop"). The second target is the worst of all final objectives, which
   every method reaches. Times include the initialization.
2. Time and peak memory (``tracemalloc``: numpy and scipy allocations, measured in a
   separate run of each call so that tracing does not slow the timed one) of ``nnls``
   (k = 20), of ``nmf`` with each method (k = 20; memory of a 3-iteration run, time per
   iteration from part 1) and of one ``neural_nmf`` epoch with ranks [20, 10, 5].
   Block principal pivoting keeps one small factor per distinct passive set, so the
   NNLS-based calls (``nnls``, ANLS, Neural NMF) also hold O(n k^2) for n columns:
   for ANLS, whose second half-step solves for the 50000 rows, that term dominates.
3. The dense path on a 5000 x 2000 slice (80 MB dense), against the same slice sparse.
4. The shape of a 20 Newsgroups matrix (37693 x 200, 0.11% nonzero), same targets.

All timings use one BLAS thread (set ``NNMF_BENCH_THREADS`` to change that). Nothing
here asserts a time. Run: ``python benchmarks/bench_sparse.py`` (about a minute and a
half on a quiet machine).
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import time
import tracemalloc
import warnings

import numpy as np
import scipy
import scipy.sparse as sp
import sklearn
import threadpoolctl
from sklearn.decomposition import NMF

import nnmf_lib
from nnmf_lib import hnmf, neural_nmf, nmf, nnls

K = 20
BUDGET = {"hals": 40, "mu": 150, "anls": 8}  # iterations of nnmf_lib's runs
SKLEARN_MU_ITER = 150


def zipf_tfidf(n_terms, n_docs, density, *, n_topics=20, seed=0):
    """A TF-IDF-like sparse matrix (terms x documents, CSR) with Zipf word laws."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_terms + 1) ** 1.1
    cdf = np.cumsum(p / p.sum())
    order = np.array([rng.permutation(n_terms) for _ in range(n_topics)])
    lengths = rng.poisson(1.35 * density * n_terms, n_docs)  # ~ density distinct
    mix = rng.dirichlet(np.full(n_topics, 0.1), n_docs)
    per_topic = rng.multinomial(lengths, mix).ravel()  # words of (document, topic)
    doc = np.repeat(np.repeat(np.arange(n_docs), n_topics), per_topic)
    topic = np.repeat(np.tile(np.arange(n_topics), n_docs), per_topic)
    term = order[topic, np.searchsorted(cdf, rng.random(doc.size))]
    counts = sp.coo_array(
        (np.ones(doc.size), (term, doc)), shape=(n_terms, n_docs)
    ).tocsr()  # duplicates summed: counts
    idf = 1.0 + np.log((1 + n_docs) / (1 + np.diff(counts.indptr)))
    X = sp.csr_array(counts.multiply(idf[:, None]))
    norms = np.sqrt(np.bincount(X.indices, weights=X.data**2, minlength=n_docs))
    X.data /= norms[X.indices]
    return X


def megabytes(X) -> float:
    if sp.issparse(X):
        return (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 1e6
    return X.nbytes / 1e6


def timed(call):
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def peak_memory(call) -> float:
    """Peak of the memory allocated during the call (MB, tracemalloc)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def library_history(X, method, budget):
    """(objective, seconds since the call) after every iteration of nnmf_lib's nmf."""
    options = dict(method=method, max_iter=budget, tol=0, random_state=0)
    seconds, res = timed(lambda: nmf(X, K, **options))
    setup = seconds - res.elapsed[-1]  # validation and initialization
    return res.objective, setup + res.elapsed


def sklearn_cd(X):
    """scikit-learn's coordinate descent with its defaults: (objective, seconds)."""
    model = NMF(K, init="nndsvda", solver="cd", random_state=0)
    seconds, _ = timed(lambda: model.fit_transform(X.T))  # its orientation: X^T
    return np.array([model.reconstruction_err_**2]), np.array([seconds])


def sklearn_mu_history(X):
    """scikit-learn's multiplicative updates: its error every 10 iterations, from its
    verbose output (an error check every 10 iterations needs tol > 0)."""
    model = NMF(
        K,
        init="nndsvda",
        solver="mu",
        max_iter=SKLEARN_MU_ITER,
        tol=1e-300,
        verbose=1,
        random_state=0,
    )
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        seconds, _ = timed(lambda: model.fit_transform(X.T))
    found = re.findall(r"after ([\d.]+) seconds, error: ([\d.]+)", log.getvalue())
    after = np.array([float(t) for t, _ in found])
    errors = np.array([float(e) for _, e in found])
    setup = seconds - after[-1]  # initialization (and the final step's bookkeeping)
    return errors**2, setup + after


def time_to(objective, seconds, target):
    hit = np.flatnonzero(objective <= target * (1 + 1e-12))
    return seconds[hit[0]] if hit.size else None


def objectives(X, title):
    """Part 1 (or 4): time for each method to reach the common targets."""
    runs = {f"nnmf_lib {m}": library_history(X, m, b) for m, b in BUDGET.items()}
    runs["scikit-learn cd"] = sklearn_cd(X)
    runs["scikit-learn mu"] = sklearn_mu_history(X)
    norm2 = float(X.data @ X.data)
    targets = {
        "scikit-learn cd, default stop": runs["scikit-learn cd"][0][-1],
        "worst final objective": max(obj[-1] for obj, _ in runs.values()),
    }
    print(f"\n{title}")
    for label, target in targets.items():
        print(
            f"   target '{label}': objective <= {target:.6f} (relative error "
            f"{np.sqrt(target / norm2):.4f})"
        )
        reached = {name: time_to(*run, target) for name, run in runs.items()}
        fastest = min(t for t in reached.values() if t is not None)
        for name, t in reached.items():
            shown = "not reached" if t is None else f"{t:7.2f} s {t / fastest:5.2f}x"
            print(f"      {name:<18} {shown}")
        if label.startswith("scikit-learn cd"):
            first = reached
    return first, runs


def costs(X, runs):
    """Part 2: time and peak memory of nnls, nmf per method, a neural_nmf epoch."""
    print("\n2. Time and peak memory (tracemalloc) on the sparse matrix, k = 20")
    A = nmf(X, K, max_iter=5, random_state=0).A  # realistic topics for nnls
    t, _ = timed(lambda: nnls(A, X))
    m = peak_memory(lambda: nnls(A, X))
    print(f"   {'nnls(A, X)':<34} {t:8.2f} s {m:9.1f} MB")
    for method in BUDGET:
        seconds = runs[f"nnmf_lib {method}"][1]
        per_iter = float(np.median(np.diff(seconds)))
        m = peak_memory(
            lambda method=method: nmf(X, K, method=method, max_iter=3, random_state=0)
        )
        label = f"nmf(method={method!r}), per iteration"
        print(f"   {label:<34} {per_iter:8.2f} s {m:9.1f} MB (3 iterations + init)")
    ranks = [20, 10, 5]
    start = hnmf(X, ranks, max_iter=10, random_state=0).A

    def one_epoch():
        return neural_nmf(X, ranks, init=start, max_epochs=1, tol=0)

    t, res = timed(one_epoch)
    m = peak_memory(one_epoch)
    print(
        f"   {'neural_nmf, ranks [20, 10, 5]':<34} {res.elapsed[1]:8.2f} s "
        f"{m:9.1f} MB (one epoch; the call, with its first forward pass: {t:.2f} s)"
    )
    return res.elapsed[1], m


def dense_reference(X):
    print("\n3. The dense path on a 5000 x 2000 slice, as the reference")
    part = X[:5000, :2000]
    dense = part.toarray()
    print(
        f"   slice: {part.nnz} nonzero ({part.nnz / dense.size:.2%}); "
        f"{megabytes(part):.1f} MB sparse, {megabytes(dense):.1f} MB dense"
    )
    fits = {}
    for name, data in (("sparse", part), ("dense", dense)):
        t, fits[name] = timed(
            lambda data=data: nmf(data, K, max_iter=30, tol=0, random_state=0)
        )
        m = peak_memory(
            lambda data=data: nmf(data, K, max_iter=3, tol=0, random_state=0)
        )
        A = fits[name].A
        tn, _ = timed(lambda data=data, A=A: nnls(A, data))
        print(
            f"   {name:<7} nmf hals 30 iterations {t:6.2f} s, peak {m:6.1f} MB "
            f"(3 iterations); nnls {tn:5.2f} s"
        )
    diff = np.abs(fits["sparse"].A - fits["dense"].A).max()
    print(f"   largest difference of the topics, sparse vs dense: {diff:.1e}")


def main():
    threads = int(os.environ.get("NNMF_BENCH_THREADS", "1"))
    with threadpoolctl.threadpool_limits(threads):
        run()


def run():
    warnings.simplefilter("ignore")  # fixed budgets stop at max_iter on purpose
    start = time.perf_counter()
    print(
        f"nnmf_lib {nnmf_lib.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    seconds, X = timed(lambda: zipf_tfidf(50000, 10000, 0.002))
    N, M = X.shape
    print(
        f"X: {N} x {M}, {X.nnz} nonzero ({X.nnz / (N * M):.2%}), {megabytes(X):.1f} MB "
        f"sparse ({8 * N * M / 1e9:.1f} GB dense); generated in {seconds:.1f} s"
    )
    first, runs = objectives(
        X, "1. Time to a common objective, k = 20 (including the start)"
    )
    epoch = costs(X, runs)
    dense_reference(X)
    small = zipf_tfidf(37693, 200, 0.0011, seed=1)
    objectives(small, f"4. A 37693 x 200 matrix, {small.nnz} nonzero, k = 20")
    ours = min(first[f"nnmf_lib {m}"] or np.inf for m in BUDGET)
    theirs = min(first[f"scikit-learn {s}"] or np.inf for s in ("cd", "mu"))
    print(
        f"\nIn short: on the {N} x {M} matrix, nnmf_lib.nmf reached scikit-learn cd's "
        f"objective in {ours:.2f} s, scikit-learn's best solver in {theirs:.2f} s "
        f"({theirs / ours:.2f} times as long); a Neural NMF epoch with ranks "
        f"[20, 10, 5] took {epoch[0]:.2f} s and {epoch[1]:.0f} MB."
    )
    print(f"(this benchmark ran in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
