"""Tests of nnmf_lib.metrics against direct computations, and their validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from nnmf_lib import accuracy, predict_labels, relative_error


def test_relative_error():
    rng = np.random.default_rng(0)
    X, Xh = rng.random((5, 6)), rng.random((5, 6))
    assert relative_error(X, Xh) == pytest.approx(
        np.sqrt(((X - Xh) ** 2).sum() / (X**2).sum())
    )
    assert relative_error(X, X) == 0.0
    assert relative_error(X, np.zeros_like(X)) == pytest.approx(1.0)
    W = rng.random(X.shape) < 0.5
    assert relative_error(X, Xh, W) == pytest.approx(
        np.linalg.norm((X - Xh)[W]) / np.linalg.norm(X[W])
    )
    # All-zero data: a zero approximation is exact, any other is infinitely wrong.
    assert relative_error(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0
    assert relative_error(np.zeros((2, 2)), np.ones((2, 2))) == np.inf
    with pytest.raises(ValueError, match=r"approximation must have shape \(5, 6\)"):
        relative_error(X, Xh[:, :3])


def test_predict_labels_and_accuracy():
    B = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    S = np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 1.1]])
    labels = predict_labels(B, S)
    assert np.array_equal(labels, [0, 1, 1])
    assert accuracy([0, 1, 2], labels) == pytest.approx(2 / 3)
    assert accuracy([0, 1, 2], labels, mask=np.array([True, True, False])) == 1.0
    with pytest.raises(ValueError, match="B has 2 columns but S has 3 rows"):
        predict_labels(B, np.ones((3, 2)))
    with pytest.raises(ValueError, match="must be 1-D arrays of the same length"):
        accuracy([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="mask must be a boolean array of shape"):
        accuracy([0, 1], [0, 1], mask=[1, 0])
    with pytest.raises(ValueError, match="empty set of samples"):
        accuracy([0, 1], [0, 1], mask=np.array([False, False]))


@pytest.mark.parametrize("c", [1e-250, 1e-120, 1e120, 1e250])
@pytest.mark.parametrize("form", ["dense", "sparse X", "both sparse"])
def test_relative_error_at_any_scale(c, form):
    """The ratio is scale-free; its squares would overflow or underflow unscaled."""
    rng = np.random.default_rng(0)
    X, D = rng.random((30, 20)), rng.random((30, 3)) @ rng.random((3, 20))
    expected = relative_error(X, D)
    X, D = c * X, c * D
    if form != "dense":
        X = sp.csr_array(X)
    if form == "both sparse":
        D = sp.csr_array(D)
    assert relative_error(X, D) == pytest.approx(expected, rel=1e-14)
