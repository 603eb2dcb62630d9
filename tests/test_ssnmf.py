"""Tests of nnmf_lib.ssnmf: monotone objective, reduction to NMF at lam = 0, label
prediction in and out of sample, masks, determinism and validation.

Inputs tried: random data with random labels; a synthetic labelled set whose classes
use disjoint topics; masked data with NaN in the unobserved entries; a class whose
labels are all unknown; lam = 0 and large lam.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnmf_lib import ConvergenceWarning, accuracy, label_mask, nmf, one_hot, ssnmf


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def labelled_data(seed=0, n_classes=3, per_class=20, N=50, known_fraction=0.3):
    """Each class is a different nonnegative topic plus a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    topics = rng.random((N, n_classes)) ** 4
    S = np.zeros((n_classes, labels.size))
    S[labels, np.arange(labels.size)] = 1 + rng.random(labels.size)
    X = topics @ S + 0.01 * rng.random((N, labels.size))
    known = rng.random(labels.size) < known_fraction
    return X, labels, known


@pytest.mark.parametrize("masked", [False, True])
def test_objective_never_increases(masked):
    rng = np.random.default_rng(1)
    X = rng.random((30, 40))
    Y = one_hot(rng.integers(0, 4, 40), 4)
    L = label_mask(rng.random(40) < 0.5, 4)
    W = (rng.random(X.shape) < 0.8) if masked else None
    res = quiet(ssnmf, X, 6, Y, L=L, W=W, lam=0.5, max_iter=500, tol=0, random_state=0)
    f = res.objective
    assert res.n_iter == 500
    assert np.all(f[1:] <= f[:-1] * (1 + 1e-12)), np.max(np.diff(f) / f[:-1])
    assert res.reconstruction[-1] <= f[-1]


def test_lam_zero_equals_nmf_from_the_same_start():
    rng = np.random.default_rng(2)
    X = rng.random((25, 30))
    Y = one_hot(rng.integers(0, 3, 30))
    for init in ("nndsvda", "random"):
        a = quiet(
            nmf, X, 5, method="mu", init=init, max_iter=200, tol=0, random_state=7
        )
        b = quiet(
            ssnmf, X, 5, Y, lam=0.0, init=init, max_iter=200, tol=0, random_state=7
        )
        assert np.array_equal(a.A, b.A) and np.array_equal(a.S, b.S)
        assert np.array_equal(a.objective, b.objective)


def test_predicts_labels_of_a_synthetic_labelled_set():
    X, labels, known = labelled_data()
    L = label_mask(known, 3)
    res = quiet(ssnmf, X, 3, one_hot(labels), L=L, lam=1.0, random_state=0)
    pred = res.predict()
    assert accuracy(labels, pred, mask=known) == 1.0
    assert accuracy(labels, pred, mask=~known) == 1.0
    # Out of sample: new noisy samples of each class, represented by NNLS.
    rng = np.random.default_rng(3)
    A_true_cols = X[:, [np.flatnonzero(labels == c)[0] for c in range(3)]]
    X_new = A_true_cols * (1 + rng.random(3)) + 0.01 * rng.random(A_true_cols.shape)
    assert np.array_equal(res.predict(X_new), np.arange(3))
    S_new = res.transform(X_new)
    assert S_new.shape == (3, 3) and (S_new >= 0).all()


def test_unknown_labels_and_masked_data_do_not_influence_the_fit():
    X, labels, known = labelled_data(seed=4)
    Y, L = one_hot(labels), label_mask(known, 3)
    rng = np.random.default_rng(4)
    W = rng.random(X.shape) < 0.8
    a = quiet(ssnmf, X, 3, Y, L=L, W=W, max_iter=50, random_state=0)
    Y2 = Y.copy()
    Y2[:, ~known] = rng.random((3, int((~known).sum())))  # garbage in unknown columns
    X2 = np.where(W, X, np.nan)
    b = quiet(ssnmf, X2, 3, Y2, L=L, W=W, max_iter=50, random_state=0)
    assert np.array_equal(a.A, b.A) and np.array_equal(a.B, b.B)


def test_a_class_without_known_labels():
    X, labels, known = labelled_data(seed=5)
    known[labels == 2] = False
    res = quiet(ssnmf, X, 3, one_hot(labels), L=label_mask(known, 3), max_iter=300)
    assert np.all(np.isfinite(res.B)) and np.all(np.isfinite(res.S))
    assert accuracy(labels, res.predict(), mask=known) == 1.0


def test_larger_lam_fits_labels_better():
    rng = np.random.default_rng(6)
    X = rng.random((30, 60))
    labels = rng.integers(0, 3, 60)  # labels unrelated to the data
    Y = one_hot(labels)
    errs = []
    for lam in (0.01, 100.0):
        res = quiet(ssnmf, X, 6, Y, lam=lam, max_iter=1000, random_state=0)
        errs.append(np.linalg.norm(Y - res.B @ res.S))
    assert errs[1] < errs[0]


def test_result_scaling_and_consistency():
    X, labels, known = labelled_data(seed=7)
    res = quiet(ssnmf, X, 3, one_hot(labels), L=label_mask(known, 3), max_iter=100)
    assert np.allclose(np.linalg.norm(res.A, axis=0), 1.0)
    Y, L = one_hot(labels), label_mask(known, 3)
    f = (
        np.linalg.norm(X - res.A @ res.S) ** 2
        + np.linalg.norm(L * (Y - res.B @ res.S)) ** 2
    )
    assert f == pytest.approx(res.objective[-1], rel=1e-10)
    assert len(res.objective) == len(res.reconstruction) == len(res.elapsed)


def test_determinism_and_inputs_untouched():
    X, labels, known = labelled_data(seed=8)
    Y, L = one_hot(labels), label_mask(known, 3)
    for arr in (X, Y, L):
        arr.flags.writeable = False
    a = quiet(ssnmf, X, 3, Y, L=L, init="random", max_iter=40, random_state=9)
    b = quiet(ssnmf, X, 3, Y, L=L, init="random", max_iter=40, random_state=9)
    assert np.array_equal(a.A, b.A) and np.array_equal(a.B, b.B)
    assert np.array_equal(a.objective, b.objective)
    c = quiet(ssnmf, X, 3, Y, L=L, init="random", max_iter=40, random_state=10)
    assert not np.array_equal(a.A, c.A)


def test_convergence_warning():
    X, labels, _ = labelled_data(seed=9)
    with pytest.warns(ConvergenceWarning, match="ssnmf stopped at max_iter=2"):
        ssnmf(X, 3, one_hot(labels), max_iter=2)


def test_one_hot_and_label_mask():
    Y = one_hot([2, 0, 1, 2])
    assert Y.shape == (3, 4) and np.array_equal(Y.argmax(axis=0), [2, 0, 1, 2])
    assert one_hot(np.array([0, 1]), n_classes=4).shape == (4, 2)
    L = label_mask(np.array([True, False, True]), 2)
    assert np.array_equal(L, [[1, 0, 1], [1, 0, 1]])
    with pytest.raises(ValueError, match="labels must be a 1-D array of integers"):
        one_hot([0.5, 1.0])
    with pytest.raises(ValueError, match="labels must be >= 0"):
        one_hot([-1, 0])
    with pytest.raises(ValueError, match="labels must be < n_classes = 2"):
        one_hot([0, 2], n_classes=2)
    with pytest.raises(ValueError, match="known must be a 1-D boolean array"):
        label_mask([1, 0], 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(Y=np.ones((3, 5))), ValueError, "Y must have one column per column of X"),
        (dict(Y=-np.ones((3, 20))), ValueError, "Y must be nonnegative"),
        (dict(L=np.ones((2, 20))), ValueError, r"L must have shape \(3, 20\)"),
        (dict(L=np.full((3, 20), 0.5)), ValueError, "L must contain only 0 and 1"),
        (dict(lam=-1.0), ValueError, "lam must be a finite number >= 0"),
        (dict(lam="big"), TypeError, "lam must be a real number"),
        (dict(B0=np.ones((3, 2))), ValueError, r"B0 must have shape \(3, 4\)"),
        (dict(k=30), ValueError, r"k must be at most min\(N, M\) = 20"),
        (dict(W=np.ones((20, 20))), ValueError, r"W must have shape \(25, 20\)"),
    ],
)
def test_validation(kwargs, error, message):
    rng = np.random.default_rng(11)
    X = rng.random((25, 20))
    Y = kwargs.pop("Y", one_hot(rng.integers(0, 3, 20), 3))
    k = kwargs.pop("k", 4)
    with pytest.raises(error, match=message):
        ssnmf(X, k, Y, **kwargs)


def test_transform_validation():
    X, labels, _ = labelled_data(seed=12)
    res = quiet(ssnmf, X, 3, one_hot(labels), max_iter=5)
    with pytest.raises(ValueError, match="X_new must have 50 rows"):
        res.transform(np.ones((10, 2)))
    with pytest.raises(ValueError, match="X_new must be nonnegative"):
        res.predict(-np.ones((50, 2)))
