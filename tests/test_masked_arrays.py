"""numpy masked arrays: a masked X means the data mask W = ~X.mask.

- Every function that takes a data mask W gives, for a masked array, exactly (bit for
  bit) the result of its data with W = ~X.mask, whatever the masked entries hold.
- A W given together with a masked array must agree with it; a masked array with no
  masked entry is plain data.
- Where missing entries have no meaning (Deep NMF, initializations, alternating NNLS,
  dictionaries A, coefficients, labels), a masked array with masked entries is an error
  that names the argument and says what to do.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnmf_lib as nl

RNG = np.random.default_rng(3)
N, M = 30, 24
X = RNG.random((N, 5)) @ RNG.random((5, M))
OBSERVED = RNG.random((N, M)) < 0.8
# Masked entries hold garbage: they must never be read.
MASKED = np.ma.masked_array(np.where(OBSERVED, X, np.nan), mask=~OBSERVED)
A = RNG.random((N, 4))
LAYERS = [RNG.random((N, 4)), RNG.random((4, 2))]
Y = nl.one_hot(np.arange(M) % 3)
S0 = nl.nnls(A, X, W=OBSERVED)


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nl.ConvergenceWarning)
        return function(*args, **kwargs)


def arrays(value):
    """The arrays in a result object, a tuple or a list, flattened."""
    if isinstance(value, (list, tuple)):
        return [a for v in value if v is not None for a in arrays(v)]
    if hasattr(value, "__dataclass_fields__"):  # a result object
        names = ("A", "S", "B", "objective", "cost", "errors")
        return arrays([getattr(value, name, None) for name in names])
    return [np.asarray(value)]


# Each function that takes a data mask, as a function of (X, W).
WITH_W = {
    "nnls": lambda X, W: nl.nnls(A, X, W=W),
    "kkt_residual": lambda X, W: nl.kkt_residual(A, X, S0 + 0.1, W=W),
    "nnls_vjp": lambda X, W: nl.nnls_vjp(A, X, S0, np.ones_like(S0), W=W),
    "nmf/mu": lambda X, W: quiet(nl.nmf, X, 4, W=W, method="mu", max_iter=30),
    "nmf/hals": lambda X, W: quiet(nl.nmf, X, 4, W=W, max_iter=30),
    "ssnmf": lambda X, W: quiet(nl.ssnmf, X, 4, Y, W=W, max_iter=30, random_state=0),
    "hnmf": lambda X, W: quiet(nl.hnmf, X, [4, 2], W=W, max_iter=30),
    "neural_nmf": lambda X, W: quiet(
        nl.neural_nmf, X, [4, 2], W=W, init=LAYERS, max_epochs=5
    ),
    "forward": lambda X, W: nl.forward(LAYERS, X, W=W),
    "loss_and_grad": lambda X, W: nl.loss_and_grad(LAYERS, X, W=W),
    "relative_error": lambda X, W: nl.relative_error(X, A @ S0, W),
}


@pytest.mark.parametrize("name", WITH_W)
def test_a_masked_array_means_w_is_not_the_mask(name):
    expected = WITH_W[name](np.where(OBSERVED, X, -7.0), OBSERVED)
    for got, want in zip(
        arrays(WITH_W[name](MASKED, None)), arrays(expected), strict=True
    ):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", WITH_W)
def test_a_w_that_agrees_is_accepted_and_one_that_does_not_is_an_error(name):
    agreed = arrays(WITH_W[name](MASKED, OBSERVED.astype(float)))
    for got, want in zip(agreed, arrays(WITH_W[name](MASKED, None)), strict=True):
        np.testing.assert_array_equal(got, want)
    other = OBSERVED.copy()
    other[0, :3] = ~other[0, :3]
    with pytest.raises(
        ValueError, match="W disagrees with the mask of the masked array X at 3 entries"
    ):
        WITH_W[name](MASKED, other)


def test_results_transform_masked_new_data_as_nnls_does():
    fit = quiet(nl.hnmf, X, [4, 2], max_iter=30, Y=Y)
    expected = nl.nnls(fit.A[0], np.where(OBSERVED, X, 0.0), W=OBSERVED)
    np.testing.assert_array_equal(fit.transform(MASKED)[0], expected)
    ss = quiet(nl.ssnmf, X, 3, Y, max_iter=20, random_state=0)
    np.testing.assert_array_equal(ss.transform(MASKED), nl.nnls(ss.A, X, W=OBSERVED))
    neural = quiet(nl.neural_nmf, X, [4, 2], init=LAYERS, max_epochs=2)
    np.testing.assert_array_equal(
        neural.transform(MASKED)[0], nl.forward(neural.A, X, W=OBSERVED)[0]
    )


def test_a_masked_array_without_masked_entries_is_plain_data():
    plain = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    np.testing.assert_array_equal(nl.nnls(A, plain), nl.nnls(A, X))
    a, b = quiet(nl.nmf, plain, 3, max_iter=10), quiet(nl.nmf, X, 3, max_iter=10)
    np.testing.assert_array_equal(a.A, b.A)
    np.testing.assert_array_equal(
        quiet(nl.deep_nmf, np.ma.masked_array(X), [3, 2], max_iter=2).S[0],
        quiet(nl.deep_nmf, X, [3, 2], max_iter=2).S[0],
    )


# Where missing entries are not supported: each call, and the start of its message.
MASKED_A = np.ma.masked_array(A, mask=A < 0.05)
UNSUPPORTED = {
    "deep_nmf": (lambda: nl.deep_nmf(MASKED, [3, 2]), "X is a masked array with"),
    "initialize": (lambda: nl.initialize(MASKED, 3), "X is a masked array with"),
    "nmf/anls": (
        lambda: nl.nmf(MASKED, 3, method="anls"),
        "method='anls' does not support a data mask W \\(nor a masked array X",
    ),
    "nnls, A": (lambda: nl.nnls(MASKED_A, X), "A is a masked array with"),
    "forward, A[0]": (
        lambda: nl.forward([MASKED_A, LAYERS[1]], X),
        r"A\[0\] is a masked array with",
    ),
    "kkt_residual, S": (
        lambda: nl.kkt_residual(A, X, np.ma.masked_array(S0, mask=S0 == 0)),
        "S is a masked array with",
    ),
    "loss_and_grad, Y": (
        lambda: nl.loss_and_grad(
            LAYERS, X, Y=np.ma.masked_array(Y, mask=Y == 0), B=np.ones((3, 2))
        ),
        "Y is a masked array with",
    ),
    "nmf, init": (
        lambda: nl.nmf(X, 4, init=(MASKED_A, S0)),
        "A0 is a masked array with",
    ),
    "relative_error, approximation": (
        lambda: nl.relative_error(X, np.ma.masked_array(X, mask=~OBSERVED)),
        "approximation is a masked array with",
    ),
}


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_masked_entries_where_they_have_no_meaning_are_an_error(name):
    call, message = UNSUPPORTED[name]
    with pytest.raises(ValueError, match=message):
        call()


def test_the_error_says_what_to_do():
    with pytest.raises(ValueError) as data_error:
        nl.deep_nmf(MASKED, [3, 2])
    assert "fill them in (for example X.filled(0))" in str(data_error.value)
    assert "a function that takes a data mask W" in str(data_error.value)
    with pytest.raises(ValueError) as dictionary_error:
        nl.nnls(MASKED_A, X)
    assert "A cannot have missing entries" in str(dictionary_error.value)
