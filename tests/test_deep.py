"""Tests of nnmf_lib.deep (Deep NMF): pooling and its adjoint, reduction to the
no-pooling model at radius 0, the documented energy, masked labels, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnmf_lib import (
    ConvergenceWarning,
    deep_nmf,
    hierarchical_blocks,
    known_mask,
    label_mask,
    pool,
    unpool,
)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def blocks():
    return hierarchical_blocks(random_state=0)


def reference_pool(S, r, segments):
    """Per-entry reference: max over the symmetric window within the segment."""
    k, M = S.shape
    out = np.empty_like(S)
    for i in range(k):
        for j in range(M):
            window = [
                t
                for t in range(j - r, j + r + 1)
                if 0 <= t < M and segments[t] == segments[j]
            ]
            out[i, j] = max(S[i, t] for t in window)
    return out


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_pool_matches_reference_and_respects_segments(radius):
    rng = np.random.default_rng(radius)
    S = rng.random((3, 17))
    segments = np.repeat([0, 1, 2], [5, 8, 4])
    pooled, where = pool(S, radius, segments)
    assert np.array_equal(pooled, reference_pool(S, radius, segments))
    assert np.array_equal(pooled, np.take_along_axis(S, where, axis=1))
    assert np.all(segments[where] == segments[None, :])
    assert np.all(np.abs(where - np.arange(17)) <= radius)


def test_pool_ties_keep_the_sample_and_radius_zero_is_identity():
    S = np.zeros((2, 6))
    pooled, where = pool(S, 2)
    assert np.array_equal(where, np.tile(np.arange(6), (2, 1)))
    S = np.random.default_rng(0).random((2, 6))
    pooled, where = pool(S, 0)
    assert np.array_equal(pooled, S) and np.array_equal(where[0], np.arange(6))


def test_unpool_is_the_adjoint_of_the_pooling_jacobian():
    rng = np.random.default_rng(1)
    S, Z, dS = rng.random((4, 30)), rng.random((4, 30)), rng.standard_normal((4, 30))
    _, where = pool(S, 2)
    J_dS = np.take_along_axis(dS, where, axis=1)  # derivative of pooling along dS
    assert np.vdot(Z, J_dS) == pytest.approx(np.vdot(unpool(Z, where), dS), rel=1e-12)
    # and finite differences confirm the Jacobian away from ties
    h = 1e-7
    fd = (pool(S + h * dS, 2)[0] - pool(S - h * dS, 2)[0]) / (2 * h)
    assert np.allclose(fd, J_dS, atol=1e-6)


def no_pool_reference(res0, X, n_sweeps):
    """Spec 4.4 without pooling: S <- S (A^T X + A' S') / (A^T A S + S), then A."""
    A = [a.copy() for a in res0.A]
    S = [s.copy() for s in res0.S]
    inputs = [X, *S[:-1]]
    eps = 1e-16
    for _ in range(n_sweeps):
        for depth in range(len(A)):
            x, a, s = inputs[depth], A[depth], S[depth]
            num, den = a.T @ x, (a.T @ a) @ s
            if depth < len(A) - 1:
                num = num + A[depth + 1] @ S[depth + 1]
                den = den + s
            S[depth] = np.maximum(eps, s * num / np.maximum(den, np.finfo(float).tiny))
            A[depth] = np.maximum(
                eps,
                a
                * (x @ S[depth].T)
                / np.maximum(a @ (S[depth] @ S[depth].T), np.finfo(float).tiny),
            )
            if depth < len(A) - 1:
                inputs[depth + 1] = S[depth]
    return A, S


def test_radius_zero_is_the_no_pooling_model(blocks):
    start = quiet(deep_nmf, blocks.X, [9, 4, 2], radius=0, max_iter=0, random_state=0)
    res = quiet(
        deep_nmf, blocks.X, [9, 4, 2], radius=0, max_iter=25, tol=0, random_state=0
    )
    A_ref, S_ref = no_pool_reference(start, blocks.X, 25)
    for a, b in zip(res.A + res.S, A_ref + S_ref, strict=True):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("labels", [False, True])
def test_energy_never_increases_without_pooling(blocks, labels):
    kwargs = {}
    if labels:
        known = known_mask(90, 0.4, random_state=0)
        kwargs = dict(Y=blocks.Y[4], L=label_mask(known, 4), lam=0.1)
    res = quiet(
        deep_nmf,
        blocks.X,
        [9, 4],
        radius=0,
        max_iter=200,
        tol=0,
        random_state=1,
        **kwargs,
    )
    E = res.objective
    assert res.n_iter == 200
    assert np.all(E[1:] <= E[:-1] * (1 + 1e-12))


def test_energy_is_documented_sum_and_decreases_overall_with_pooling(blocks):
    res = quiet(deep_nmf, blocks.X, [9, 4, 2], radius=1, max_iter=100, random_state=2)
    E = sum(
        np.linalg.norm(x - a @ s) ** 2
        for x, a, s in zip(res.inputs, res.A, res.S, strict=True)
    )
    assert res.objective[-1] == pytest.approx(E, rel=1e-10)
    assert res.objective[-1] < res.objective[0]
    pooled = pool(res.S[0], 1)[0]
    assert np.array_equal(res.inputs[1], pooled)
    assert len(res.errors) == 3 and np.all(np.diff(res.errors) > 0)


def test_unknown_labels_do_not_influence_the_fit(blocks):
    known = known_mask(90, 0.4, random_state=3)
    L = label_mask(known, 4)
    Y2 = blocks.Y[4].copy()
    Y2[:, ~known] = 1.0  # garbage where the label is unknown
    a = quiet(
        deep_nmf,
        blocks.X,
        [9, 4],
        Y=blocks.Y[4],
        L=L,
        lam=0.1,
        max_iter=20,
        random_state=0,
    )
    b = quiet(
        deep_nmf, blocks.X, [9, 4], Y=Y2, L=L, lam=0.1, max_iter=20, random_state=0
    )
    assert np.array_equal(a.B, b.B) and np.array_equal(a.S[1], b.S[1])
    assert a.predict().shape == (90,)


def test_determinism_and_validation(blocks):
    a = quiet(deep_nmf, blocks.X, [9, 4], max_iter=10, random_state=4)
    b = quiet(deep_nmf, blocks.X, [9, 4], max_iter=10, random_state=4)
    assert np.array_equal(a.objective, b.objective)
    with pytest.raises(ValueError, match="predict needs a model fitted with labels"):
        a.predict()
    with pytest.raises(ValueError, match="radius must be at least 0"):
        deep_nmf(blocks.X, [9], radius=-1)
    with pytest.raises(ValueError, match="segments must be an integer array with one"):
        deep_nmf(blocks.X, [9, 4], segments=np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match=r"ranks\[1\] = 5 exceeds ranks\[0\] = 4"):
        deep_nmf(blocks.X, [4, 5])
    with pytest.warns(ConvergenceWarning) as record:  # forward layers warn as well
        deep_nmf(blocks.X, [9, 4], max_iter=1, tol=0, forward_iter=5)
    assert any("deep_nmf stopped at max_iter=1" in str(w.message) for w in record)
