"""Tests of nnmf_lib.neural (Neural NMF): the gradient against central finite
differences and against the paper's per-column Phi/U formula, the training's monotone
cost, its relation to NMF, masks, determinism and validation.

Instances: small random dictionaries with 1, 2 and 3 layers, chosen (by seed) so that
strict complementarity holds with a margin at every layer (the supports do not change
under the finite-difference step); unsupervised, semi-supervised (half the labels) and
supervised; both costs; with and without a data mask.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnmf_lib import (
    ConvergenceWarning,
    forward,
    hierarchical_blocks,
    known_mask,
    label_mask,
    loss_and_grad,
    neural_nmf,
    nmf,
    nnls,
    one_hot,
)

SHAPES = {1: [4], 2: [4, 3], 3: [4, 3, 2]}


def margin(A, X, W=None):
    """Smallest strict-complementarity margin over all layers (relative)."""
    S = forward(A, X, W=W)
    worst = np.inf
    for i, (a, s) in enumerate(zip(A, S, strict=True)):
        x = X if i == 0 else S[i - 1]
        w = W if (i == 0 and W is not None) else np.ones_like(x)
        g = a.T @ (w * (a @ s - x))
        if (s == 0).any():
            worst = min(worst, g[s == 0].min() / np.abs(a.T @ (w * x)).max())
    return worst, S


def stable_instance(depth, seed_base, masked=False):
    """A random instance whose supports are stable and not all full."""
    for seed in range(seed_base, seed_base + 300):
        rng = np.random.default_rng(seed)
        X = rng.random((12, 15))
        ranks = SHAPES[depth]
        rows = [12, *ranks[:-1]]
        A = [rng.random((n, k)) + 0.05 for n, k in zip(rows, ranks, strict=True)]
        W = (rng.random(X.shape) < 0.8) if masked else None
        worst, S = margin(A, X, W)
        if worst > 1e-4 and any((s == 0).any() for s in S):
            return rng, X, A, W
    raise AssertionError("no stable instance found")


def supervision(kind, rng, M, P, k_last):
    if kind == "unsupervised":
        return {}
    labels = rng.integers(0, P, M)
    known = np.ones(M, bool) if kind == "supervised" else rng.random(M) < 0.5
    return dict(
        Y=one_hot(labels, P), L=label_mask(known, P), B=rng.random((P, k_last)), lam=0.7
    )


def central_difference(fun, Z, h=1e-6):
    out = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        E = np.zeros_like(Z)
        E[idx] = h
        out[idx] = (fun(Z + E) - fun(Z - E)) / (2 * h)
    return out


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("kind", ["unsupervised", "semi-supervised", "supervised"])
@pytest.mark.parametrize("loss", ["reconstruction", "energy"])
def test_gradient_matches_finite_differences(depth, kind, loss):
    rng, X, A, _ = stable_instance(depth, 100 * depth)
    kw = supervision(kind, rng, X.shape[1], 3, A[-1].shape[1])
    _, grads, grad_B = loss_and_grad(A, X, loss=loss, **kw)

    def cost_of(layers, B=None):
        extra = {**kw, "B": B} if "B" in kw else kw
        return loss_and_grad(layers, X, loss=loss, **extra)[0]

    for i in range(depth):

        def f(Z, i=i):
            return cost_of([Z if j == i else a for j, a in enumerate(A)], kw.get("B"))

        fd = central_difference(f, A[i])
        assert np.linalg.norm(grads[i] - fd) <= 1e-6 * np.linalg.norm(fd), (i, loss)
    if "B" in kw:
        fd_B = central_difference(lambda B: cost_of(A, B), kw["B"])
        assert np.linalg.norm(grad_B - fd_B) <= 1e-6 * np.linalg.norm(fd_B)
    else:
        assert grad_B is None


@pytest.mark.parametrize("loss", ["reconstruction", "energy"])
def test_masked_gradient_matches_finite_differences(loss):
    _, X, A, W = stable_instance(2, 700, masked=True)
    _, grads, _ = loss_and_grad(A, X, W=W, loss=loss)
    for i in range(2):

        def f(Z, i=i):
            layers = [Z if j == i else a for j, a in enumerate(A)]
            return loss_and_grad(layers, X, W=W, loss=loss)[0]

        fd = central_difference(f, A[i])
        assert np.linalg.norm(grads[i] - fd) <= 1e-6 * np.linalg.norm(fd)
    # masked entries of X do not matter at all
    X2 = np.where(W, X, 1e3)
    assert loss_and_grad(A, X2, W=W, loss=loss)[0] == pytest.approx(
        loss_and_grad(A, X, W=W, loss=loss)[0], rel=1e-12
    )


def phi_u_gradient(A, X, partial_S, direct_A):
    """The paper's chain rule, column by column, with pseudoinverses (naive reference).

    Phi^(l,l'),m = (A^(l')_T^+)_{:,T(l'-1)} ... (A^(l+1)_T^+)_{:,T(l)} (A^(l)_T^+),
    d = Phi^T (dC/dS^(l'))_{T(l'),m},
    U_{:,T(l)} = -d s_T^T + (S^(l-1) - A^(l) S^(l))_{:,m} d^T (A^(l)_T^+)^T,
    dC/dA^(l) = dC/dA^(l)|_S + sum over l' >= l and m of U^(l,l'),m.
    """
    S = forward(A, X)
    inputs = [X, *S[:-1]]
    depth, M = len(A), X.shape[1]
    grads = [g.copy() for g in direct_A]
    for m in range(M):
        T = [S[i][:, m] > 0 for i in range(depth)]
        pinv = [np.linalg.pinv(A[i][:, T[i]]) for i in range(depth)]  # |T(i)| x k_{i-1}
        for low in range(depth):
            for high in range(low, depth):
                phi = pinv[low]
                for i in range(low + 1, high + 1):
                    phi = pinv[i][:, T[i - 1]] @ phi
                d = phi.T @ partial_S[high][T[high], m]
                r = inputs[low][:, m] - A[low] @ S[low][:, m]
                U = -np.outer(d, S[low][T[low], m]) + np.outer(r, pinv[low] @ d)
                grads[low][:, T[low]] += U
    return grads


@pytest.mark.parametrize("depth", [2, 3])
def test_vectorized_gradient_equals_the_papers_phi_u_formula(depth):
    _, X, A, _ = stable_instance(depth, 400 + depth)
    S = forward(A, X)
    # Reconstruction cost: only S^(L) enters directly; direct A terms with S fixed.
    prefix = [np.eye(X.shape[0])]
    for a in A:
        prefix.append(prefix[-1] @ a)
    R = X - prefix[-1] @ S[-1]
    partial_S = [np.zeros_like(s) for s in S[:-1]] + [-2 * prefix[-1].T @ R]
    direct_A = []
    for i in range(depth):
        suffix = S[-1]
        for a in reversed(A[i + 1 :]):
            suffix = a @ suffix
        direct_A.append(-2 * prefix[i].T @ R @ suffix.T)
    reference = phi_u_gradient(A, X, partial_S, direct_A)
    _, grads, _ = loss_and_grad(A, X)
    for g, ref in zip(grads, reference, strict=True):
        assert np.allclose(g, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


@pytest.fixture(scope="module")
def blocks():
    return hierarchical_blocks(random_state=0)


@pytest.mark.parametrize("loss", ["reconstruction", "energy"])
def test_training_never_increases_the_cost(blocks, loss):
    known = known_mask(90, 0.4, random_state=1)
    res = neural_nmf(
        blocks.X,
        [9, 4],
        Y=blocks.Y[4],
        L=label_mask(known, 4),
        lam=1.0,
        loss=loss,
        max_epochs=60,
        tol=0,
        random_state=0,
    )
    assert res.n_epochs > 10
    assert np.all(np.diff(res.cost) <= 1e-12 * res.cost[:-1])
    assert np.all(res.steps > 0)
    assert all((a >= 0).all() for a in res.A) and (res.B >= 0).all()


def test_one_layer_ends_at_or_below_the_nmf_it_started_from(blocks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = nmf(blocks.X, 9, random_state=0)
    A0 = [start.A]
    S0 = nnls(start.A, blocks.X)
    f0 = np.linalg.norm(blocks.X - start.A @ S0) ** 2
    assert f0 <= start.objective[-1] * (1 + 1e-12)  # q only improves S
    res = neural_nmf(blocks.X, [9], init=A0, max_epochs=100)
    assert res.cost[0] == pytest.approx(f0, rel=1e-12)
    assert res.cost[-1] <= f0
    assert res.errors[-1] <= np.sqrt(start.objective[-1]) / np.linalg.norm(blocks.X)


def test_deeper_training_beats_hnmf_start(blocks):
    res = neural_nmf(blocks.X, [9, 4, 2], max_epochs=40, random_state=0)
    assert res.errors[-1] < res.errors[0] - 0.01  # backpropagation helps hNMF
    assert res.approximation().shape == blocks.X.shape
    assert np.linalg.norm(blocks.X - res.approximation()) / np.linalg.norm(
        blocks.X
    ) == pytest.approx(res.errors[-1])


def test_prediction_transform_and_adam(blocks):
    known = known_mask(90, 0.4, random_state=2)
    res = neural_nmf(
        blocks.X,
        [9, 4],
        Y=blocks.Y[4],
        L=label_mask(known, 4),
        max_epochs=30,
        random_state=0,
    )
    assert res.predict().shape == (90,)
    assert np.array_equal(res.predict(blocks.X), res.predict())
    S = res.transform(blocks.X)
    assert np.allclose(S[-1], res.S[-1])
    adam = neural_nmf(blocks.X, [9, 4], optimizer="adam", lr=1e-3, max_epochs=30)
    assert all((a >= 0).all() for a in adam.A) and adam.n_epochs == 30
    with pytest.raises(ValueError, match="predict needs a model trained with labels"):
        adam.predict()


def test_masked_training(blocks):
    W = np.random.default_rng(3).random(blocks.X.shape) > 0.2
    X = np.where(W, blocks.X, np.nan)
    res = neural_nmf(X, [9, 4], W=W, max_epochs=30, random_state=0)
    assert np.all(np.diff(res.cost) <= 1e-12 * res.cost[:-1])
    err = np.linalg.norm((blocks.X - res.approximation())[W]) / np.linalg.norm(
        blocks.X[W]
    )
    assert err == pytest.approx(res.errors[-1])


def test_callback_determinism_and_inputs_untouched(blocks):
    X = blocks.X.copy()
    X.flags.writeable = False
    seen = []

    def stop_at_five(epoch, A, B, cost):
        seen.append(cost)
        return epoch == 5

    a = neural_nmf(
        X, [9, 4], init="random", random_state=7, max_epochs=50, callback=stop_at_five
    )
    assert a.n_epochs == 5 and len(seen) == 5
    b = neural_nmf(X, [9, 4], init="random", random_state=7, max_epochs=5)
    assert np.array_equal(a.cost, b.cost)
    assert all(np.array_equal(x, y) for x, y in zip(a.A, b.A, strict=True))
    rng = np.random.default_rng(8)
    A_init = [rng.random((87, 9)), rng.random((9, 4))]
    for arr in A_init:
        arr.flags.writeable = False
    neural_nmf(X, [9, 4], init=A_init, max_epochs=2)


def test_validation(blocks):
    X = blocks.X
    with pytest.raises(TypeError, match="A must be a nonempty list"):
        loss_and_grad(np.ones((87, 3)), X)
    with pytest.raises(
        ValueError, match=r"A\[1\] must have 3 rows \(the columns of A\[0\]\)"
    ):
        loss_and_grad([np.ones((87, 3)), np.ones((4, 2))], X)
    with pytest.raises(ValueError, match=r"A\[0\] must have 87 rows \(the rows of X\)"):
        forward([np.ones((80, 3))], X)
    with pytest.raises(ValueError, match=r"A\[0\] must be nonnegative"):
        forward([-np.ones((87, 3))], X)
    with pytest.raises(ValueError, match="B is required when labels Y are given"):
        loss_and_grad([np.ones((87, 3))], X, Y=blocks.Y[2])
    with pytest.raises(ValueError, match=r"B must have shape \(2, 3\)"):
        loss_and_grad([np.ones((87, 3))], X, Y=blocks.Y[2], B=np.ones((3, 3)))
    with pytest.raises(
        ValueError, match="loss must be one of 'reconstruction', 'energy'"
    ):
        neural_nmf(X, [3], loss="mse")
    with pytest.raises(ValueError, match="optimizer must be one of 'pgd', 'adam'"):
        neural_nmf(X, [3], optimizer="sgd")
    with pytest.raises(ValueError, match="init must be one of 'hnmf', 'random'"):
        neural_nmf(X, [3], init="nndsvd")
    with pytest.raises(ValueError, match=r"init has ranks \[3\], but ranks is \[4\]"):
        neural_nmf(X, [4], init=[np.ones((87, 3))])
    with pytest.raises(
        ValueError, match=r"L \(the label mask\) was given without labels Y"
    ):
        neural_nmf(X, [3], L=np.ones((2, 90)))
    with pytest.raises(ValueError, match="Y must have one column per column of X"):
        neural_nmf(X, [3], Y=np.ones((2, 10)))
    with pytest.raises(ValueError, match=r"ranks\[1\] = 5 exceeds ranks\[0\] = 3"):
        neural_nmf(X, [3, 5])
