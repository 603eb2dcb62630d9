"""Sparse data (scipy.sparse X) in every function that takes data, against the dense
copy as the oracle.

- Every function accepts CSR, CSC and COO, as scipy.sparse arrays and matrices, and
  returns the result of the dense copy (to 1e-10 relative; NNLS has a unique minimizer
  here, so that is also its KKT optimum).
- X is never densified: every format is passed as a subclass whose ``toarray``,
  ``todense`` and ``A`` raise, and on a 20000 x 1500 matrix whose dense form would be
  more than 100 times larger the peak extra memory (tracemalloc) stays within 5 times
  bytes(X) + bytes(W) + 8 (N + M) k (the largest measured is about 4 times, for
  alternating NNLS, whose least-squares solver holds about 15 k x N arrays).
- Data masks with sparse X, stored by their observed side, their missing side, or given
  as a sparse matrix, give the result of the dense X with the same mask.
- Bad sparse input raises the messages of dense input.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import nnmf_lib as nl
from nnmf_lib._sparse import SparseMask, sample

BASES = [sp.csr_array, sp.csc_array, sp.coo_array]
BASES += [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix]


def _strict(base):
    """A subclass of a sparse format that refuses to be densified."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__}: X was densified")

    attributes = {"toarray": refuse, "todense": refuse, "A": property(refuse)}
    return type(f"Strict{base.__name__}", (base,), attributes)


STRICT = {base.__name__: _strict(base) for base in BASES}


def data(seed=0, shape=(60, 40), density=0.15):
    """A random sparse nonnegative matrix (canonical CSR) and its dense copy."""
    X = sp.random_array(shape, density=density, format="csr", rng=seed)
    return X, X.toarray()


X_SP, X_DENSE = data()
N, M = X_DENSE.shape
RNG = np.random.default_rng(1)
A_TRUE = RNG.random((N, 4))
LAYERS = [RNG.random((N, 4)), RNG.random((4, 2))]
LABELS = np.arange(M) % 3
Y, L = nl.one_hot(LABELS), nl.label_mask(RNG.random(M) < 0.5, 3)
GRAD = RNG.standard_normal((4, M))
S_OFF = nl.nnls(A_TRUE, X_DENSE) + 0.01  # not optimal: a KKT residual of order 1


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nl.ConvergenceWarning)
        return function(*args, **kwargs)


def assert_close(got, expected, rtol=1e-10):
    """Every array (or list of arrays, or number) within rtol of its largest entry."""
    if isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, rtol)
        return
    if sp.issparse(got):
        got = sp.csr_array(got).toarray()  # a result, not the data
    expected = np.asarray(expected, dtype=float)
    scale = max(float(np.abs(expected).max()), np.finfo(float).tiny)
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)


def result_arrays(result):
    """The factors (and histories) of a result object, for comparison."""
    out = []
    for name in ("A", "S", "B", "objective", "cost", "errors", "relative_error"):
        value = getattr(result, name, None)
        if value is not None:
            out += list(value) if isinstance(value, list) else [value]
    return out


def vjp_at_entries(X):
    """dA, and dX at the stored entries of X (all that nnls_vjp gives for sparse X)."""
    dA, dX = nl.nnls_vjp(A_TRUE, X, nl.nnls(A_TRUE, X_DENSE), GRAD)
    return [dA, dX.toarray() if sp.issparse(dX) else np.where(X_DENSE != 0, dX, 0.0)]


# Each function, as a function of the data: its result as a list of arrays.
CALLS = {
    "nnls": lambda X: [nl.nnls(A_TRUE, X)],
    "kkt_residual": lambda X: [nl.kkt_residual(A_TRUE, X, S_OFF)],
    "nnls_vjp": lambda X: vjp_at_entries(X),
    "nmf/mu": lambda X: result_arrays(
        quiet(nl.nmf, X, 4, method="mu", max_iter=100, tol=0, random_state=0)
    ),
    "nmf/hals": lambda X: result_arrays(quiet(nl.nmf, X, 4, max_iter=100, tol=0)),
    "nmf/anls": lambda X: result_arrays(
        quiet(nl.nmf, X, 4, method="anls", max_iter=20, tol=0)
    ),
    "nmf/random": lambda X: result_arrays(
        quiet(nl.nmf, X, 4, init="random", max_iter=50, tol=0, random_state=3)
    ),
    "initialize": lambda X: list(nl.initialize(X, 4, "nndsvdar", random_state=0)),
    "ssnmf": lambda X: result_arrays(
        quiet(nl.ssnmf, X, 4, Y, L=L, max_iter=100, tol=0, random_state=0)
    ),
    "hnmf": lambda X: result_arrays(quiet(nl.hnmf, X, [4, 2], max_iter=100, tol=0)),
    "hnmf/labels": lambda X: result_arrays(
        quiet(
            nl.hnmf,
            X,
            [4, 2],
            Y=Y,
            L=L,
            method="mu",
            max_iter=100,
            tol=0,
            random_state=0,
        )
    ),
    "deep_nmf": lambda X: result_arrays(
        quiet(
            nl.deep_nmf,
            X,
            [4, 2],
            Y=Y,
            L=L,
            forward_iter=50,
            max_iter=20,
            tol=0,
            random_state=0,
        )
    ),
    "neural_nmf": lambda X: result_arrays(
        quiet(nl.neural_nmf, X, [4, 2], max_epochs=15, tol=0, random_state=0)
    ),
    "neural_nmf/energy": lambda X: result_arrays(
        quiet(
            nl.neural_nmf,
            X,
            [4, 2],
            Y=Y,
            L=L,
            loss="energy",
            max_epochs=15,
            tol=0,
            random_state=0,
        )
    ),
    "forward": lambda X: nl.forward(LAYERS, X),
    "loss_and_grad": lambda X: [
        v
        for v in nl.loss_and_grad(LAYERS, X, Y=Y, L=L, B=np.ones((3, 2)))
        if v is not None
    ],
    "relative_error": lambda X: [nl.relative_error(X, A_TRUE @ nl.nnls(A_TRUE, X))],
    "relative_error/sparse": lambda X: [nl.relative_error(X, 2 * X)],
    "transform": lambda X: quiet(
        nl.hnmf, X_DENSE, [4, 2], max_iter=20, tol=0
    ).transform(X),
}


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("base", STRICT)
def test_every_format_gives_the_dense_result_without_densifying(name, base):
    X = STRICT[base](X_SP.asformat(base[:3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", nl.AccuracyWarning)
        got, expected = CALLS[name](X), CALLS[name](X_DENSE)
    assert_close(got, expected)


def test_nnls_vjp_returns_the_gradient_at_the_stored_entries():
    S = nl.nnls(A_TRUE, X_DENSE)
    G = RNG.standard_normal(S.shape)
    dA, dX = nl.nnls_vjp(A_TRUE, X_SP, S, G)
    dA_dense, dX_dense = nl.nnls_vjp(A_TRUE, X_DENSE, S, G)
    assert isinstance(dX, sp.csr_array)
    np.testing.assert_array_equal(dX.indices, X_SP.indices)
    np.testing.assert_array_equal(dX.indptr, X_SP.indptr)
    assert_close(dX.toarray(), np.where(X_DENSE != 0, dX_dense, 0.0))
    assert_close(dA, dA_dense)


def test_matrices_of_mostly_stored_entries_take_the_dense_path():
    """At least 2/3 of the entries stored: the dense form is no larger, and the result
    is the dense one bit for bit."""
    X = np.where(RNG.random((20, 15)) < 0.8, RNG.random((20, 15)), 0.0)
    a = quiet(nl.nmf, sp.csr_array(X), 3, max_iter=20, tol=0)
    b = quiet(nl.nmf, X, 3, max_iter=20, tol=0)
    np.testing.assert_array_equal(a.A, b.A)


def test_load_docstrings_offers_the_sparse_matrix():
    from nnmf_lib.datasets import load_docstrings

    dense, sparse = load_docstrings(), load_docstrings(sparse=True)
    assert isinstance(sparse.X, sp.csr_array)
    np.testing.assert_array_equal(sparse.X.toarray(), dense.X)
    full = load_docstrings(min_df=1, sparse=True)
    assert full.X.shape[1] == dense.X.shape[1] and full.X.shape[0] > dense.X.shape[0]
    assert full.X.nnz < 0.05 * full.X.shape[0] * full.X.shape[1]


# --- data masks with sparse X --------------------------------------------------------

MASKS = {
    "observed side": RNG.random((N, M)) < 0.3,  # stored as its observed entries
    "missing side": RNG.random((N, M)) < 0.8,  # stored as its missing entries
}
MASKS["sparse W"] = sp.csr_array(MASKS["observed side"].astype(float))

MASKED_CALLS = {
    "nnls": lambda X, W: [nl.nnls(A_TRUE, X, W=W)],
    "kkt_residual": lambda X, W: [nl.kkt_residual(A_TRUE, X, S_OFF, W=W)],
    "nnls_vjp": lambda X, W: [
        nl.nnls_vjp(A_TRUE, X, nl.nnls(A_TRUE, X_DENSE, W=dense(W)), GRAD, W=W)[0]
    ],
    "nmf/mu": lambda X, W: result_arrays(
        quiet(nl.nmf, X, 4, W=W, method="mu", max_iter=50, tol=0, random_state=0)
    ),
    "nmf/hals": lambda X, W: result_arrays(
        quiet(nl.nmf, X, 4, W=W, max_iter=50, tol=0)
    ),
    "ssnmf": lambda X, W: result_arrays(
        quiet(nl.ssnmf, X, 4, Y, L=L, W=W, max_iter=50, tol=0, random_state=0)
    ),
    "hnmf": lambda X, W: result_arrays(
        quiet(nl.hnmf, X, [4, 2], W=W, max_iter=50, tol=0)
    ),
    "neural_nmf": lambda X, W: result_arrays(
        quiet(nl.neural_nmf, X, [4, 2], W=W, init=LAYERS, max_epochs=5, tol=0)
    ),
    "forward": lambda X, W: nl.forward(LAYERS, X, W=W),
    "loss_and_grad": lambda X, W: [
        v
        for v in nl.loss_and_grad(LAYERS, X, W=W, Y=Y, B=np.ones((3, 2)))
        if v is not None
    ],
    "relative_error": lambda X, W: [
        nl.relative_error(X, A_TRUE @ nl.nnls(A_TRUE, X_DENSE), W)
    ],
}


def dense(W):
    return W.toarray() if sp.issparse(W) else W


@pytest.mark.parametrize("name", MASKED_CALLS)
@pytest.mark.parametrize("mask", MASKS)
def test_masks_with_sparse_data_give_the_dense_result(name, mask):
    W = MASKS[mask]
    X = STRICT["csc_matrix"](X_SP.tocsc())
    assert_close(MASKED_CALLS[name](X, W), MASKED_CALLS[name](X_DENSE, dense(W)))


def test_masked_out_stored_entries_are_ignored():
    """Stored entries of a sparse X where W is 0 may hold anything, NaN included."""
    W = MASKS["missing side"]
    X = X_SP.copy()
    X.data[~W[X_SP.nonzero()]] = np.nan
    a = quiet(nl.nmf, X, 3, W=W, max_iter=20)
    b = quiet(nl.nmf, X_SP, 3, W=W, max_iter=20)
    np.testing.assert_array_equal(a.A, b.A)


def test_sparse_mask_keeps_the_smaller_side_and_samples_products():
    W = MASKS["missing side"]
    mask = SparseMask.from_dense(W)
    assert not mask.observed and mask.P.nnz == int((~W).sum())
    assert SparseMask.from_dense(~W).observed
    np.testing.assert_array_equal(mask.observed_at(*np.nonzero(W)), True)
    A, S = RNG.random((N, 3)), RNG.random((3, M))
    rows, cols = np.nonzero(~W)
    assert_close(sample(A, S, rows, cols), (A @ S)[rows, cols], rtol=1e-15)
    few = np.nonzero(RNG.random((N, M)) < 0.01)  # gathered, not read from blocks
    assert_close(sample(A, S, *few), (A @ S)[few], rtol=1e-15)
    product = mask.product(A, S)  # W * (A S) as an operator
    Z = RNG.random((M, 2))
    assert_close(product @ Z, (W * (A @ S)) @ Z, rtol=1e-14)
    assert_close(A.T @ product, A.T @ (W * (A @ S)), rtol=1e-14)


# --- memory on a matrix whose dense form would be 128 times larger --------------------

BIG = dict(shape=(20000, 1500), density=0.005, k=4)


@pytest.fixture(scope="module")
def big():
    X = sp.random_array(BIG["shape"], density=BIG["density"], format="csr", rng=5)
    W = sp.random_array(BIG["shape"], density=0.01, format="csr", rng=6)
    W.data[:] = 1.0
    quiet(nl.nmf, X, BIG["k"], max_iter=1)  # imports and first-call caches
    return X, W


def _bytes(X) -> int:
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


BIG_CALLS = {
    "nnls": lambda X, W, A, k: nl.nnls(A[0], X),
    "nnls/W": lambda X, W, A, k: nl.nnls(A[0], X, W=W),
    "kkt_residual": lambda X, W, A, k: nl.kkt_residual(
        A[0], X, np.ones((k, X.shape[1]))
    ),
    "nnls_vjp": lambda X, W, A, k: nl.nnls_vjp(
        A[0], X, np.ones((k, X.shape[1])), np.ones((k, X.shape[1]))
    ),
    "nmf/hals": lambda X, W, A, k: quiet(nl.nmf, X, k, max_iter=3),
    "nmf/hals W": lambda X, W, A, k: quiet(nl.nmf, X, k, W=W, max_iter=3),
    "nmf/mu": lambda X, W, A, k: quiet(nl.nmf, X, k, method="mu", max_iter=3),
    "nmf/mu W": lambda X, W, A, k: quiet(nl.nmf, X, k, W=W, method="mu", max_iter=3),
    "nmf/anls": lambda X, W, A, k: quiet(nl.nmf, X, k, method="anls", max_iter=2),
    "ssnmf": lambda X, W, A, k: quiet(
        nl.ssnmf, X, k, nl.one_hot(np.arange(X.shape[1]) % 3), max_iter=3
    ),
    "hnmf": lambda X, W, A, k: quiet(nl.hnmf, X, [k, 2], max_iter=3),
    "deep_nmf": lambda X, W, A, k: quiet(
        nl.deep_nmf, X, [k, 2], forward_iter=3, max_iter=2
    ),
    "neural_nmf": lambda X, W, A, k: quiet(nl.neural_nmf, X, [k, 2], max_epochs=2),
    "forward": lambda X, W, A, k: nl.forward(A, X),
    "loss_and_grad": lambda X, W, A, k: nl.loss_and_grad(A, X),
    "loss_and_grad/W": lambda X, W, A, k: nl.loss_and_grad(A, X, W=W),
    "relative_error": lambda X, W, A, k: nl.relative_error(X, X * 0.5),
}


@pytest.mark.parametrize("name", BIG_CALLS)
def test_peak_memory_stays_within_a_few_times_the_sparse_data(big, name):
    X, W = big
    (N, M), k = X.shape, BIG["k"]
    assert 8 * N * M > 100 * _bytes(X)  # the dense form would be 100 times larger
    rng = np.random.default_rng(0)
    A = [rng.random((N, k)), rng.random((k, 2))]
    masked = "W" in name
    bound = _bytes(X) + (_bytes(W) if masked else 0) + 8 * (N + M) * k
    tracemalloc.start()
    try:
        BIG_CALLS[name](X, W, A, k)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * bound, (
        f"{name}: peak {peak / 1e6:.1f} MB, bound {bound / 1e6:.1f}"
    )


# --- errors ------------------------------------------------------------------------


def test_bad_sparse_input_raises_the_dense_messages():
    X = X_SP.copy()
    X.data[3] = -2.0
    rows, cols = X.nonzero()
    with pytest.raises(
        ValueError,
        match=rf"X must be nonnegative; it has 1 negative entry \(the smallest is "
        rf"-2 at row {rows[3]}, column {cols[3]}\)",
    ):
        nl.nmf(X, 2)
    X.data[3] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite entry"):
        nl.nnls(A_TRUE, X.tocoo())
    with pytest.raises(TypeError, match="X must be real"):
        nl.nnls(A_TRUE, X_SP.astype(complex))
    with pytest.raises(ValueError, match=r"X must have at least one row"):
        nl.nnls(A_TRUE, sp.csr_array((N, 0)))
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        nl.nnls(A_TRUE, sp.coo_array(np.ones(3)))
    with pytest.raises(ValueError, match=r"W must have shape \(60, 40\)"):
        nl.nmf(X_SP, 2, W=sp.csr_array((3, 3)))
    with pytest.raises(ValueError, match="W must contain only 0 and 1"):
        nl.nmf(X_SP, 2, W=2 * MASKS["sparse W"])
    with pytest.raises(ValueError, match="method='anls' does not support a data mask"):
        nl.nmf(X_SP, 2, W=MASKS["sparse W"], method="anls")


def test_the_remembered_product_is_never_stale():
    """SparseMask.sample remembers its last product; a factor changed in place (as HALS
    does) must give the new product."""
    mask = SparseMask.from_dense(MASKS["observed side"])
    A, S = RNG.random((N, 3)), RNG.random((3, M))
    first = mask.sample(A, S).copy()
    S[1] *= 2.0
    np.testing.assert_array_equal(mask.sample(A, S), sample(A, S, mask.rows, mask.cols))
    assert not np.array_equal(mask.sample(A, S), first)
