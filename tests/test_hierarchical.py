"""Tests of nnmf_lib.hierarchical (hNMF) on the paper's block data and random data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnmf_lib import (
    ConvergenceWarning,
    accuracy,
    hierarchical_blocks,
    hnmf,
    known_mask,
    label_mask,
    nmf,
    nnls,
)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def blocks():
    return hierarchical_blocks(random_state=0)


def svd_floor(X, k):
    s = np.linalg.svd(X, compute_uv=False)
    return np.sqrt(np.sum(s[k:] ** 2) / np.sum(s**2))


@pytest.mark.parametrize("seed", range(3))
def test_error_grows_with_depth_and_never_beats_the_svd(blocks, seed):
    ranks = [9, 4, 2]
    res = quiet(hnmf, blocks.X, ranks, init="random", random_state=seed)
    assert np.all(np.diff(res.errors) > 0)
    for err, k in zip(res.errors, ranks, strict=True):
        assert err >= svd_floor(blocks.X, k) - 1e-12
    for depth in range(3):
        approx = res.approximation(depth)
        direct = np.linalg.norm(blocks.X - approx) / np.linalg.norm(blocks.X)
        assert res.errors[depth] == pytest.approx(direct)


def test_layers_are_independent_greedy_nmfs(blocks):
    res = quiet(hnmf, blocks.X, [9, 4], random_state=0)
    first = quiet(nmf, blocks.X, 9, random_state=0)
    assert np.array_equal(res.A[0], first.A) and np.array_equal(res.S[0], first.S)
    assert [a.shape for a in res.A] == [(87, 9), (9, 4)]
    assert [s.shape for s in res.S] == [(9, 90), (4, 90)]
    assert np.allclose(np.linalg.norm(res.A[1], axis=0), 1.0)
    assert res.layers[1].relative_error == pytest.approx(
        np.linalg.norm(res.S[0] - res.A[1] @ res.S[1]) / np.linalg.norm(res.S[0])
    )


def test_semi_supervised_last_layer(blocks):
    known = known_mask(90, 0.4, random_state=0)
    L = label_mask(known, 4)
    res = quiet(hnmf, blocks.X, [9, 4], Y=blocks.Y[4], L=L, lam=1e-3, random_state=0)
    assert res.B.shape == (4, 4)
    pred = res.predict()
    assert accuracy(blocks.labels[4], pred, ~known) > 0.8
    S_new = res.transform(blocks.X)
    assert [s.shape for s in S_new] == [(9, 90), (4, 90)]
    assert np.allclose(S_new[0], nnls(res.A[0], blocks.X))
    assert res.predict(blocks.X).shape == (90,)


def test_masked_first_layer():
    data = hierarchical_blocks(random_state=4)
    W = np.random.default_rng(4).random(data.X.shape) > 0.2
    X = np.where(W, data.X, np.nan)
    res = quiet(hnmf, X, [9, 4], W=W, random_state=0)
    assert np.all(np.isfinite(res.errors))
    approx = res.approximation(1)
    assert res.errors[1] == pytest.approx(
        np.linalg.norm((data.X - approx)[W]) / np.linalg.norm(data.X[W])
    )


def test_determinism_and_inputs_untouched(blocks):
    X = blocks.X.copy()
    X.flags.writeable = False
    a = quiet(hnmf, X, [9, 4, 2], init="random", random_state=5)
    b = quiet(hnmf, X, [9, 4, 2], init="random", random_state=5)
    assert all(np.array_equal(x, y) for x, y in zip(a.A, b.A, strict=True))


def test_predict_without_labels_raises(blocks):
    res = quiet(hnmf, blocks.X, [4], max_iter=5)
    with pytest.raises(ValueError, match="predict needs a model fitted with labels"):
        res.predict()
    with pytest.raises(ValueError, match="X_new must have 87 rows"):
        res.transform(np.ones((3, 2)))


@pytest.mark.parametrize(
    ("ranks", "error", "message"),
    [
        ([], ValueError, "ranks must have at least one layer"),
        (4, TypeError, "ranks must be a sequence of integers"),
        ([9, 0], ValueError, r"ranks\[1\] must be at least 1"),
        ([4, 9], ValueError, r"ranks\[1\] = 9 exceeds ranks\[0\] = 4"),
        ([100], ValueError, r"ranks\[0\] must be at most min\(N, M\) = 87"),
        ([9, 2.5], TypeError, r"ranks\[1\] must be an integer"),
    ],
)
def test_rank_validation(blocks, ranks, error, message):
    with pytest.raises(error, match=message):
        hnmf(blocks.X, ranks)
