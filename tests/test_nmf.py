"""Tests of nnmf_lib.nmf: monotone objectives, exact subproblems (cvxpy), agreement with
scikit-learn, masks, initializations, determinism and input validation.

Inputs tried: random dense data, exactly low-rank nonnegative data with missing entries,
masked entries holding huge values or NaN, an all-zero matrix, k = 1 and k = min(N, M).
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _initialize_nmf

from nnmf_lib import ConvergenceWarning, initialize, kkt_residual, nmf


def random_data(seed=0, shape=(40, 50), rank=6, noise=0.1):
    rng = np.random.default_rng(seed)
    N, M = shape
    return rng.random((N, rank)) @ rng.random((rank, M)) + noise * rng.random(shape)


def quiet_nmf(*args, **kwargs):
    """nmf without the ConvergenceWarning that fixed-iteration runs expect."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return nmf(*args, **kwargs)


@pytest.mark.parametrize(
    ("method", "masked"),
    [("mu", False), ("hals", False), ("anls", False), ("mu", True), ("hals", True)],
)
def test_objective_never_increases(method, masked):
    rng = np.random.default_rng(1)
    X = rng.random((30, 40))  # unstructured data: slow, long convergence
    W = (rng.random(X.shape) < 0.7) if masked else None
    iters = 500 if method != "anls" else 60
    res = quiet_nmf(X, 8, method=method, W=W, max_iter=iters, tol=0, random_state=0)
    assert res.n_iter == iters
    f = res.objective
    assert np.all(f[1:] <= f[:-1] * (1 + 1e-12)), np.max(np.diff(f) / f[:-1])
    assert f[-1] < f[0]


def cvxpy_nnls(A, X):
    S = cp.Variable((A.shape[1], X.shape[1]), nonneg=True)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X - A @ S)))
    problem.solve(solver=cp.OSQP, eps_abs=1e-8, eps_rel=1e-8, polishing=True)
    assert problem.status == cp.OPTIMAL
    return S.value


@pytest.mark.parametrize("seed", range(3))
def test_each_anls_subproblem_matches_cvxpy(seed):
    rng = np.random.default_rng(seed)
    X = rng.random((25, 30))
    A0, S0 = rng.random((25, 5)), rng.random((5, 30))
    with pytest.warns(ConvergenceWarning):
        res = nmf(X, 5, method="anls", init=(A0, S0), max_iter=1)
    S1 = cvxpy_nnls(A0, X)  # first half step: S = q(A0, X)
    A1 = cvxpy_nnls(S1.T, X.T).T  # second half step: A = q(S1^T, X^T)^T
    d = np.linalg.norm(A1, axis=0)
    assert np.allclose(res.A, A1 / d, rtol=1e-7, atol=1e-9)
    assert np.allclose(res.S, S1 * d[:, None], rtol=1e-7, atol=1e-9)
    # and each half step is optimal by the KKT measure
    S1_lib, A1_lib = res.S / d[:, None], res.A * d
    assert kkt_residual(A0, X, S1_lib) < 1e-10
    assert kkt_residual(S1_lib.T, X.T, A1_lib.T) < 1e-10


@pytest.mark.parametrize("method", ["hals", "anls", "mu"])
def test_final_objective_close_to_scikit_learn(method):
    X = random_data(seed=2, shape=(60, 80), rank=8)
    k = 8
    sk = NMF(k, init="nndsvda", solver="cd", max_iter=2000, tol=1e-8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W_sk = sk.fit_transform(X.T)
    f_sk = np.linalg.norm(X.T - W_sk @ sk.components_) ** 2
    # Multiplicative updates converge slowly: they need many more iterations.
    max_iter = {"mu": 20000, "hals": 2000, "anls": 300}[method]
    res = quiet_nmf(X, k, method=method, max_iter=max_iter, tol=1e-9, random_state=0)
    assert res.objective[-1] <= 1.05 * f_sk
    assert np.linalg.norm(X - res.A @ res.S) ** 2 == pytest.approx(res.objective[-1])


def test_mu_matches_scikit_learn_mu_at_equal_iterations():
    X = random_data(seed=2, shape=(60, 80), rank=8)
    sk = NMF(8, init="nndsvda", solver="mu", max_iter=2000, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W_sk = sk.fit_transform(X.T)
    f_sk = np.linalg.norm(X.T - W_sk @ sk.components_) ** 2
    res = quiet_nmf(X, 8, method="mu", max_iter=2000, tol=0)
    assert res.objective[-1] <= 1.01 * f_sk


@pytest.mark.parametrize("method", ["mu", "hals"])
def test_masked_entries_do_not_influence_the_fit(method):
    rng = np.random.default_rng(3)
    X = random_data(seed=3)
    W = rng.random(X.shape) < 0.75
    res = quiet_nmf(X, 5, method=method, W=W, max_iter=50, random_state=0)
    for filler in (1e6, np.nan, -5.0, np.inf):
        X2 = np.where(W, X, filler)
        res2 = quiet_nmf(X2, 5, method=method, W=W, max_iter=50, random_state=0)
        assert np.array_equal(res.A, res2.A) and np.array_equal(res.S, res2.S)


@pytest.mark.parametrize("method", ["mu", "hals"])
def test_full_mask_equals_no_mask(method):
    X = random_data(seed=4)
    a = quiet_nmf(X, 5, method=method, max_iter=100, tol=0, random_state=0)
    b = quiet_nmf(X, 5, method=method, W=np.ones(X.shape), max_iter=100, tol=0)
    assert np.allclose(a.objective, b.objective, rtol=1e-9)
    assert np.allclose(a.A @ a.S, b.A @ b.S, rtol=1e-8, atol=1e-10)


def test_missing_entries_are_recovered():
    """Exactly low-rank data with 20% missing entries: the masked fit fills them in."""
    rng = np.random.default_rng(5)
    X = rng.random((40, 4)) @ rng.random((4, 60))
    W = rng.random(X.shape) > 0.2
    res = quiet_nmf(np.where(W, X, np.nan), 4, method="hals", W=W, max_iter=3000)
    missing = ~W
    err = np.linalg.norm((res.A @ res.S - X)[missing]) / np.linalg.norm(X[missing])
    assert err < 1e-3


def test_anls_rejects_mask():
    X = random_data()
    with pytest.raises(
        ValueError, match="method='anls' does not support a data mask W"
    ):
        nmf(X, 3, method="anls", W=np.ones(X.shape))


def test_nndsvd_matches_scikit_learn():
    X = random_data(seed=6, shape=(30, 45))
    for init in ("nndsvd", "nndsvda"):
        A, S = initialize(X, 6, init)
        W_sk, H_sk = _initialize_nmf(X.T, 6, init=init, random_state=0)
        assert np.allclose(A, H_sk.T, rtol=1e-6, atol=1e-8)
        assert np.allclose(S, W_sk.T, rtol=1e-6, atol=1e-8)
    A, S = initialize(X, 6, "nndsvd")
    assert (A == 0).any() and (S == 0).any()  # plain NNDSVD leaves exact zeros
    A, S = initialize(X, 6, "nndsvdar", random_state=0)
    assert (A > 0).all() and (S > 0).all()


def test_random_init_scale_and_large_matrix_init():
    X = random_data(seed=7, shape=(300, 250), rank=10, noise=0.01)
    A, S = initialize(X, 10, "random", random_state=0)
    # E|N(0,1)|^2 = 2/pi, so E[(AS)_ij] = (2/pi) mean(X), as in scikit-learn.
    assert (A @ S).mean() == pytest.approx(2 / np.pi * X.mean(), rel=0.05)
    A, S = initialize(X, 10, "nndsvd", random_state=0)  # randomized SVD path
    A2, S2 = initialize(X, 10, "nndsvd", random_state=0)
    assert np.array_equal(A, A2) and np.array_equal(S, S2)
    W_sk, H_sk = _initialize_nmf(X.T, 10, init="nndsvd", random_state=0)
    assert np.allclose(A @ S, (W_sk @ H_sk).T, rtol=1e-4, atol=1e-6)
    assert np.linalg.norm(X - A @ S) < 0.2 * np.linalg.norm(X)


def test_mu_with_nndsvd_warns_about_zero_locking():
    with pytest.warns(UserWarning, match="zero locking"):
        quiet_nmf(random_data(), 3, method="mu", init="nndsvd", max_iter=5)


def test_convergence_warning_and_flag():
    X = random_data()
    with pytest.warns(ConvergenceWarning, match="stopped at max_iter=3"):
        res = nmf(X, 4, max_iter=3)
    assert not res.converged and res.n_iter == 3
    res = nmf(X, 4, method="anls", max_iter=500, tol=1e-6)
    assert res.converged and res.n_iter < 500
    assert len(res.objective) == len(res.elapsed) == res.n_iter + 1
    assert np.all(np.diff(res.elapsed) >= 0)


def test_result_is_normalized_and_consistent():
    X = random_data()
    res = nmf(X, 4, random_state=0)
    assert np.allclose(np.linalg.norm(res.A, axis=0), 1.0)
    assert res.relative_error == pytest.approx(
        np.linalg.norm(X - res.A @ res.S) / np.linalg.norm(X)
    )
    assert (res.A >= 0).all() and (res.S >= 0).all()


def test_determinism_and_inputs_untouched():
    X = random_data(seed=8)
    X.flags.writeable = False
    for method in ("mu", "hals", "anls"):
        a = quiet_nmf(X, 4, method=method, init="random", random_state=3, max_iter=30)
        b = quiet_nmf(X, 4, method=method, init="random", random_state=3, max_iter=30)
        assert np.array_equal(a.A, b.A) and np.array_equal(a.objective, b.objective)
    c = quiet_nmf(X, 4, init="random", random_state=4, max_iter=30)
    assert not np.array_equal(a.A, c.A)
    gen = np.random.default_rng(5)
    quiet_nmf(X, 4, init="random", random_state=gen, max_iter=3)
    A0, S0 = np.ones((40, 4)), np.ones((4, 50))
    A0.flags.writeable = S0.flags.writeable = False
    quiet_nmf(X, 4, init=(A0, S0), max_iter=3)


def test_edge_cases():
    X = random_data(seed=9, shape=(12, 10))
    assert quiet_nmf(X, 1, max_iter=50).A.shape == (12, 1)
    res = quiet_nmf(X, 10, method="anls", max_iter=200)  # k = min(N, M): exact fit
    assert res.relative_error < 1e-6
    res = nmf(np.zeros((5, 4)), 2)
    assert res.converged and np.all(res.A @ res.S == 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(k=0), ValueError, "k must be at least 1; got 0"),
        (dict(k=11), ValueError, r"k must be at most min\(N, M\) = 10"),
        (dict(k=2.0), TypeError, "k must be an integer"),
        (dict(method="pgd"), ValueError, "method must be one of 'mu', 'hals', 'anls'"),
        (dict(init="svd"), ValueError, "init must be one of 'nndsvda', 'nndsvd'"),
        (dict(init=(np.ones((12, 3)),)), ValueError, r"init must be a method name or"),
        (
            dict(init=(np.ones((12, 2)), np.ones((3, 10)))),
            ValueError,
            r"A0 must have shape \(12, 3\)",
        ),
        (
            dict(init=(np.ones((12, 3)), -np.ones((3, 10)))),
            ValueError,
            "S0 must be nonnegative",
        ),
        (dict(max_iter=0), ValueError, "max_iter must be at least 1"),
        (dict(tol=-1.0), ValueError, "tol must be a finite number >= 0"),
        (dict(random_state="seed"), TypeError, "random_state must be None, an int"),
        (dict(W=np.ones((3, 3))), ValueError, r"W must have shape \(12, 10\)"),
        (dict(W=np.full((12, 10), 2.0)), ValueError, "W must contain only 0 and 1"),
    ],
)
def test_validation(kwargs, error, message):
    X = random_data(seed=10, shape=(12, 10))
    k = kwargs.pop("k", 3)
    with pytest.raises(error, match=message):
        nmf(X, k, **kwargs)


def test_validation_of_data():
    with pytest.raises(ValueError, match="X must be nonnegative"):
        nmf(-np.ones((4, 4)), 2)
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        nmf(_one_nan(), 2)
    with pytest.raises(ValueError, match="X must be nonnegative"):  # observed negative
        nmf(-np.ones((4, 4)), 2, W=np.eye(4))
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        nmf(np.ones(4), 1)


def _one_nan():
    X = np.ones((4, 4))
    X[1, 2] = np.nan
    return X
