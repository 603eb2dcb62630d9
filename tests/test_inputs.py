"""Unusual but valid input: conversions, degenerate data, and arguments left untouched.

Bad input (every kind, against every public function) is run by the book's page
book/inputs.md, which nbval executes as a test: each must raise TypeError or ValueError
from nnmf_lib's own checks, naming the argument. This file covers the inputs that must
*work*:

- array types: nested lists, float32, integer and boolean arrays, scipy.sparse
  matrices, read-only arrays; each gives the result of the equivalent float64 array;
- degenerate data: all-zero X, zero rows and columns, duplicated topics (rank-deficient
  supports), k = 1, a single sample, entries at 1e-12 and at 1e12, a class with no
  known label, NaN in masked-out entries;
- arguments are never modified in place (every array is passed read-only).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import factors, quiet, read_only

import nnmf_lib as nl

RNG = np.random.default_rng(7)
N, M = 14, 12
X = RNG.random((N, M))
LABELS = np.arange(M) % 3
Y = nl.one_hot(LABELS)


# Each factorization, as a function of the data only (fixed seeds, short runs).
FACTORIZATIONS = {
    "nmf/hals": lambda X: quiet(nl.nmf, X, 3, max_iter=30, random_state=0),
    "nmf/mu": lambda X: quiet(nl.nmf, X, 3, method="mu", max_iter=30, random_state=0),
    "nmf/anls": lambda X: quiet(nl.nmf, X, 3, method="anls", max_iter=10),
    "ssnmf": lambda X: quiet(nl.ssnmf, X, 3, Y, max_iter=30, random_state=0),
    "hnmf": lambda X: quiet(nl.hnmf, X, [4, 2], max_iter=30, random_state=0),
    "deep_nmf": lambda X: quiet(
        nl.deep_nmf, X, [4, 2], forward_iter=20, max_iter=5, random_state=0
    ),
    "neural_nmf": lambda X: quiet(
        nl.neural_nmf, X, [4, 2], max_epochs=5, random_state=0
    ),
}


def assert_same(result_a, result_b):
    for a, b in zip(factors(result_a), factors(result_b), strict=True):
        np.testing.assert_array_equal(a, b)


CONVERSIONS = {
    "list": lambda X: X.tolist(),
    "float32": lambda X: X.astype(np.float32),
    "csr": sp.csr_matrix,
    "csc": sp.csc_matrix,
    "read-only": read_only,
}


@pytest.mark.parametrize("conversion", CONVERSIONS)
@pytest.mark.parametrize("name", FACTORIZATIONS)
def test_array_types_give_the_float64_result(name, conversion):
    data = X.astype(np.float32).astype(np.float64)  # exactly representable in float32
    converted = CONVERSIONS[conversion](data)
    assert_same(FACTORIZATIONS[name](converted), FACTORIZATIONS[name](data))


def test_integer_and_boolean_data():
    counts = RNG.integers(0, 5, size=(N, M))
    assert_same(
        FACTORIZATIONS["nmf/hals"](counts), FACTORIZATIONS["nmf/hals"](counts * 1.0)
    )
    present = counts > 2
    np.testing.assert_array_equal(
        nl.nnls(present, present), nl.nnls(present * 1.0, present * 1.0)
    )


def test_nnls_and_helpers_accept_every_type_and_leave_inputs_alone():
    exact = (
        np.float32
    )  # data exactly representable in float32, so conversions are exact
    A = read_only(RNG.random((N, 4)).astype(exact).astype(float))
    Xr = read_only(X.astype(exact).astype(float))
    S = nl.nnls(A, Xr)
    G = read_only(RNG.standard_normal(S.shape))
    for convert in CONVERSIONS.values():
        np.testing.assert_array_equal(nl.nnls(convert(A), convert(Xr)), S)
    nl.kkt_residual(A, Xr, read_only(S))
    nl.nnls_vjp(A, Xr, read_only(S), G)
    nl.relative_error(Xr, read_only(A @ S), W=read_only(np.ones((N, M))))
    nl.product([A, read_only(np.eye(4))], read_only(S))
    nl.pool(read_only(S), 1)
    layers = [read_only(RNG.random((N, 4))), read_only(RNG.random((4, 2)))]
    nl.forward(layers, Xr)
    nl.loss_and_grad(layers, Xr, Y=read_only(Y), B=read_only(np.ones((3, 2))))


@pytest.mark.parametrize("name", FACTORIZATIONS)
def test_factorizations_leave_read_only_inputs_alone(name):
    before = X.copy()
    FACTORIZATIONS[name](read_only(X))
    np.testing.assert_array_equal(X, before)


def test_masked_and_labelled_inputs_are_left_alone():
    W = read_only(RNG.random((N, M)) < 0.8)
    L = read_only(nl.label_mask(RNG.random(M) < 0.5, 3))
    Xw = np.where(W, X, np.nan)  # masked-out entries may hold NaN
    Xw.setflags(write=False)
    for fit in (
        lambda: quiet(nl.nmf, Xw, 3, W=W, max_iter=10),
        lambda: quiet(nl.ssnmf, Xw, 3, read_only(Y), L=L, W=W, max_iter=10),
        lambda: quiet(nl.hnmf, Xw, [4, 2], Y=read_only(Y), L=L, W=W, max_iter=10),
        lambda: quiet(
            nl.neural_nmf, Xw, [4, 2], Y=read_only(Y), L=L, W=W, max_epochs=2
        ),
    ):
        result = fit()
        assert all(np.isfinite(f).all() and (f >= 0).all() for f in factors(result))


# --- degenerate data -----------------------------------------------------------------


@pytest.mark.parametrize("name", FACTORIZATIONS)
def test_all_zero_data(name):
    result = FACTORIZATIONS[name](np.zeros((N, M)))
    for f in factors(result):
        assert np.isfinite(f).all() and (f >= 0).all()
    errors = getattr(result, "errors", None)
    if name == "deep_nmf":  # entries are floored at 1e-16: documented as inf
        assert np.all(errors == np.inf)
    elif errors is not None:
        assert np.all(errors == 0)


def test_all_zero_data_in_nnls_gives_zero_coefficients():
    S = nl.nnls(RNG.random((N, 3)), np.zeros((N, M)))
    assert np.array_equal(S, np.zeros((3, M)))


@pytest.mark.parametrize("name", FACTORIZATIONS)
def test_zero_rows_and_columns(name):
    """A word in no document, a blank image: factors stay finite; a zero sample is
    reconstructed as (nearly) zero."""
    data = X.copy()
    data[3] = 0.0
    data[:, 5] = 0.0
    result = FACTORIZATIONS[name](data)
    for f in factors(result):
        assert np.isfinite(f).all() and (f >= 0).all()
    if name == "deep_nmf":
        return  # pooling gives a sample its neighbours' coefficients, by design
    if name == "ssnmf":
        return  # the sample's known label pulls its coefficients away from 0
    A, S = (result.A, result.S) if isinstance(result.A, np.ndarray) else (None, None)
    approximation = A @ S if A is not None else result.approximation()
    assert np.abs(approximation[:, 5]).max() < 1e-6 * np.abs(approximation).max()


def test_zero_column_of_data_has_zero_coefficients_in_nnls():
    data = X.copy()
    data[:, 5] = 0.0
    assert np.array_equal(nl.nnls(RNG.random((N, 3)), data)[:, 5], np.zeros(3))


def test_duplicated_topics():
    """Duplicated columns of A make every support with both copies singular."""
    A = RNG.random((N, 4))
    A = np.hstack([A, A[:, :1]])
    S = nl.nnls(A, X)
    assert nl.kkt_residual(A, X, S) < 1e-10
    np.testing.assert_allclose(A @ S, A[:, :4] @ nl.nnls(A[:, :4], X), atol=1e-10)
    both = np.zeros_like(S)
    both[[0, 4]] = 1.0  # force a support holding both copies
    with pytest.warns(nl.RankDeficiencyWarning):
        dA, dX = nl.nnls_vjp(A, X, S + both, np.ones_like(S))
    assert np.isfinite(dA).all() and np.isfinite(dX).all()


def test_rank_one_nmf_reaches_the_svd_bound():
    """For nonnegative data the best rank-1 approximation is nonnegative (Perron)."""
    result = quiet(nl.nmf, X, 1, method="anls", max_iter=200)
    s = np.linalg.svd(X, compute_uv=False)
    bound = np.sqrt((s[1:] ** 2).sum() / (s**2).sum())
    error = nl.relative_error(X, result.A @ result.S)
    assert error == pytest.approx(bound, rel=1e-6)


def test_a_single_sample():
    column = X[:, :1]
    for method in ("hals", "mu", "anls"):
        result = quiet(nl.nmf, column, 1, method=method, max_iter=500)
        assert nl.relative_error(column, result.A @ result.S) < 1e-6
    assert nl.nnls(RNG.random((N, 3)), column).shape == (3, 1)
    result = quiet(nl.neural_nmf, column, [1], max_epochs=3)
    assert result.S[-1].shape == (1, 1)


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_tiny_and_huge_scales(scale):
    A = RNG.random((N, 4))
    S = nl.nnls(A, X)
    np.testing.assert_allclose(nl.nnls(A, scale * X), scale * S, rtol=1e-9, atol=0)
    assert nl.kkt_residual(A, scale * X, scale * S) < 1e-10
    # With a scale-equivariant start, the fit of c X has the relative error of X's.
    warnings.simplefilter("ignore", UserWarning)  # nndsvd with mu: zero locking
    for method in ("hals", "mu", "anls"):
        for init in ("nndsvd", "random"):
            fit = [
                quiet(
                    nl.nmf,
                    c * X,
                    3,
                    method=method,
                    init=init,
                    max_iter=30,
                    random_state=0,
                )
                for c in (1.0, scale)
            ]
            errors = [
                nl.relative_error(c * X, f.A @ f.S)
                for c, f in zip((1, scale), fit, strict=True)
            ]
            assert errors[1] == pytest.approx(errors[0], rel=1e-6), (method, init)
    # The default start (nndsvda, as in scikit-learn) is not exactly equivariant (its
    # docstring says why): the fits still match the unit-scale fit within 5%.
    for name in ("nmf/hals", "nmf/mu", "nmf/anls", "hnmf", "neural_nmf"):
        plain, scaled = FACTORIZATIONS[name](X), FACTORIZATIONS[name](scale * X)
        for f in factors(scaled):
            assert np.isfinite(f).all() and (f >= 0).all()
        if hasattr(scaled, "errors"):
            error, reference = scaled.errors[-1], plain.errors[-1]
        else:
            error = nl.relative_error(scale * X, scaled.A @ scaled.S)
            reference = nl.relative_error(X, plain.A @ plain.S)
        assert error == pytest.approx(reference, rel=0.05), name


def test_a_class_with_no_known_label():
    known = LABELS != 2  # no sample of class 2 has a known label
    result = quiet(
        nl.ssnmf, X, 3, Y, L=nl.label_mask(known, 3), max_iter=300, random_state=0
    )
    assert np.isfinite(result.B).all() and (result.B >= 0).all()
    # The classifier never saw class 2: its row decays, and it is never predicted.
    assert result.B[2].max() < 1e-3 * result.B[:2].max()
    assert not np.any(nl.predict_labels(result.B, result.S) == 2)


def test_ranks_that_the_data_cannot_support_are_refused():
    with pytest.raises(
        ValueError, match=r"ranks\[0\] must be at most min\(N, M\) = 12"
    ):
        nl.hnmf(X, [13, 2])
    with pytest.raises(ValueError, match=r"ranks\[1\] = 5 exceeds ranks\[0\] = 4"):
        nl.neural_nmf(X, [4, 5])
    with pytest.raises(ValueError, match=r"k must be at most min\(N, M\) = 12"):
        nl.nmf(X, 13)
