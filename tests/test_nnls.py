"""Tests of nnmf_lib.nnls against independent oracles (cvxpy, scipy.optimize.nnls,
finite differences), plus properties, determinism and input validation.

Instances tried (60 in the oracle test): tall, wide and square dictionaries; duplicated
columns of A; all-zero columns of X; exact zeros inside X; X exactly in the cone of A
with sparse coefficients (degenerate: no strict complementarity); a zero column of A.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import replace

import cvxpy as cp
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
from helpers import next_line

from nnmf_lib import (
    AccuracyWarning,
    ConvergenceWarning,
    NNLSInfo,
    RankDeficiencyWarning,
    forward,
    kkt_residual,
    neural_nmf,
    nmf,
    nnls,
    nnls_vjp,
)

nnls_module = importlib.import_module("nnmf_lib.nnls")  # the module, not the function
times_t = importlib.import_module("nnmf_lib._sparse").times_t

KINDS = ["tall", "wide", "square", "duplicate", "zero_columns", "exact", "zero_atom"]


def make_instance(seed: int):
    """A random NNLS instance; which degenerate feature it has depends on the seed."""
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    N, k = {"wide": (8, 14), "square": (12, 12)}.get(kind, (40, 8))
    M = int(rng.integers(1, 25))
    A = rng.random((N, k))
    X = rng.random((N, M))
    if kind == "duplicate":
        A[:, -1] = A[:, 0]
    if kind == "zero_atom":
        A[:, 1] = 0.0
    if kind == "zero_columns":
        X[:, :: max(2, M // 3)] = 0.0
        X *= rng.random((N, M)) < 0.6  # exact zeros inside X as well
    if (
        kind == "exact"
    ):  # X = A S_true with sparse S_true: a degenerate, zero-residual fit
        S_true = rng.random((k, M)) * (rng.random((k, M)) < 0.4)
        X = A @ S_true
    return kind, A, X


def unique_minimizer(A: np.ndarray) -> bool:
    return np.linalg.matrix_rank(A) == A.shape[1]


def cvxpy_nnls(A, X):
    """min ||X - A S||_F^2 over S >= 0 by cvxpy (OSQP, tight tolerances, polishing)."""
    S = cp.Variable((A.shape[1], X.shape[1]), nonneg=True)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X - A @ S)))
    problem.solve(
        solver=cp.OSQP, eps_abs=1e-8, eps_rel=1e-8, polishing=True, max_iter=200_000
    )
    assert problem.status == cp.OPTIMAL
    return S.value


def scipy_nnls(A, X):
    """The per-column reference: Lawson-Hanson, one column at a time."""
    return np.column_stack([scipy.optimize.nnls(A, x)[0] for x in X.T])


def rel(a, b):
    scale = max(np.abs(b).max(), np.finfo(float).tiny)
    return np.abs(a - b).max() / scale


@pytest.mark.parametrize("seed", range(60))
def test_nnls_matches_cvxpy_and_scipy(seed):
    kind, A, X = make_instance(seed)
    S, info = nnls(A, X, return_info=True)
    assert S.shape == (A.shape[1], X.shape[1])
    assert np.all(S >= 0)
    assert info.kkt_residual <= 1e-10
    assert kkt_residual(A, X, S) <= 1e-10
    for S_ref in (cvxpy_nnls(A, X), scipy_nnls(A, X)):
        fit, fit_ref = A @ S, A @ S_ref
        if np.abs(fit_ref).max() > 0:
            assert rel(fit, fit_ref) <= 1e-8, kind
        else:
            assert np.abs(fit).max() <= 1e-12
        if unique_minimizer(A) and np.abs(S_ref).max() > 0:
            assert rel(S, S_ref) <= 1e-8, kind
    obj = np.sum((X - A @ S) ** 2)
    obj_ref = np.sum((X - A @ scipy_nnls(A, X)) ** 2)
    assert obj <= obj_ref * (1 + 1e-10) + 1e-14


def test_zero_data_gives_zero_solution():
    A = np.random.default_rng(0).random((10, 3))
    S = nnls(A, np.zeros((10, 4)))
    assert np.array_equal(S, np.zeros((3, 4)))


def test_exact_zeros_off_support():
    rng = np.random.default_rng(1)
    A, X = rng.random((30, 10)) ** 3, rng.random((30, 50)) ** 2
    S = nnls(A, X)
    G = A.T @ (A @ S - X)
    assert (S == 0).any()
    assert np.all(G[S == 0] >= -1e-12 * np.abs(A.T @ X).max())
    assert np.abs(G[S > 0]).max() <= 1e-12 * np.abs(A.T @ X).max()


def test_many_distinct_supports_match_scipy():
    """The hard case for grouping: almost every column has its own support."""
    rng = np.random.default_rng(2)
    A, X = rng.random((100, 25)) ** 4, rng.random((100, 400)) ** 3
    S = nnls(A, X)
    n_supports = len({tuple(c) for c in (S > 0).T})
    assert n_supports > 200
    assert rel(S, scipy_nnls(A, X)) <= 1e-10


def test_warm_start_gives_the_same_solution_in_fewer_sweeps():
    rng = np.random.default_rng(3)
    A, X = rng.random((80, 12)) ** 2, rng.random((80, 300))
    S = nnls(A, X)
    A2 = A * (1 + 0.01 * rng.standard_normal(A.shape)).clip(0.5)
    S_cold, info_cold = nnls(A2, X, return_info=True)
    S_warm, info_warm = nnls(A2, X, support=S > 0, return_info=True)
    assert rel(S_warm, S_cold) <= 1e-12
    assert info_warm.n_iter < info_cold.n_iter
    # Any starting support converges to the same answer, even a bad one.
    S_full = nnls(A2, X, support=np.ones_like(S, dtype=bool))
    S_int = nnls(A2, X, support=(S > 0).astype(int))
    assert rel(S_full, S_cold) <= 1e-12 and rel(S_int, S_warm) <= 1e-12


def test_fallback_after_max_iter_is_still_exact():
    rng = np.random.default_rng(4)
    A, X = rng.random((50, 15)) ** 3, rng.random((50, 40)) ** 2
    with pytest.warns(ConvergenceWarning, match="finished by the Lawson-Hanson"):
        S, info = nnls(A, X, max_iter=1, return_info=True)
    assert info.n_fallback > 0 and info.n_iter == 1
    assert rel(S, nnls(A, X)) <= 1e-10
    assert info.kkt_residual <= 1e-10


def test_info_record():
    rng = np.random.default_rng(5)
    A, X = rng.random((20, 4)), rng.random((20, 6))
    S, info = nnls(A, X, return_info=True)
    assert isinstance(info, NNLSInfo)
    assert info.n_iter >= 1 and info.n_fallback == 0 and not info.rank_deficient
    # The same residual, up to rounding (the solver works with unit-norm topics).
    assert info.kkt_residual == pytest.approx(kkt_residual(A, X, S), abs=1e-14)
    A[:, 3] = A[:, 0]
    with pytest.warns(RankDeficiencyWarning):
        info = nnls(A, X, return_info=True)[1]
    assert info.rank_deficient and info.n_rank_deficient > 0


def test_kkt_residual_is_scale_free_and_detects_bad_solutions():
    rng = np.random.default_rng(6)
    A, X = rng.random((30, 5)), rng.random((30, 8))
    S = nnls(A, X)
    assert kkt_residual(A, X, S) < 1e-13
    bad = S.copy()
    bad[bad > 0] *= 1.01
    r = kkt_residual(A, X, bad)
    assert r > 1e-4
    assert kkt_residual(10 * A, 3 * X, bad * 0.3) == pytest.approx(r, rel=1e-10)
    negative = S.copy()
    negative[0, 0] = -0.1
    assert kkt_residual(A, X, negative) > 1e-3
    assert kkt_residual(A, np.zeros_like(X), np.zeros_like(S)) == 0.0


SCALES = [1e-250, 1e-120, 3.0, 1e120, 1e250]
# Pairs (a, x) whose answer x / a is itself a float (between 1e-300 and 1e300).
SCALE_PAIRS = [(a, x) for a in SCALES for x in SCALES if 1e-300 <= x / a <= 1e300]


@pytest.mark.parametrize(("a", "x"), SCALE_PAIRS)
def test_any_scale_of_A_and_X_gives_the_scaled_answer(a, x):
    """q(a A, x X) = (x / a) q(A, X) for scales from 1e-250 to 1e250, wherever the
    answer itself is a float (x / a between 1e-300 and 1e300)."""
    rng = np.random.default_rng(7)
    A, X = rng.random((25, 6)), rng.random((25, 10))
    A[:, 2] *= 1e-9  # a topic much smaller than the others
    S = nnls(A, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        S_scaled, info = nnls(a * A, x * X, return_info=True)
    np.testing.assert_allclose(S_scaled * (a / x), S, rtol=1e-10, atol=0)
    assert info.kkt_residual <= 1e-10
    assert kkt_residual(a * A, x * X, S_scaled) == pytest.approx(
        kkt_residual(A, X, S), abs=1e-14
    )


@pytest.mark.parametrize(("a", "x"), SCALE_PAIRS)
def test_kkt_residual_is_scale_free_and_finite(a, x):
    rng = np.random.default_rng(17)
    A, X = rng.random((20, 4)), rng.random((20, 6))
    bad = nnls(A, X) * 1.01 + 0.001  # a candidate that is not optimal
    r = kkt_residual(A, X, bad)
    assert r > 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value
        r_scaled = kkt_residual(a * A, x * X, bad * (x / a))
    assert np.isfinite(r_scaled) and r_scaled == pytest.approx(r, rel=1e-10)


def test_deterministic_and_inputs_untouched():
    rng = np.random.default_rng(8)
    A, X = rng.random((30, 6)), rng.random((30, 20))
    A.flags.writeable = False  # any write would raise
    X.flags.writeable = False
    support = np.zeros((6, 20), dtype=bool)
    support.flags.writeable = False
    S1 = nnls(A, X, support=support)
    S2 = nnls(A.copy(), X.copy(), support=support)
    assert np.array_equal(S1, S2)
    G = rng.standard_normal(S1.shape)
    G.flags.writeable = False
    S1.flags.writeable = False
    d1 = nnls_vjp(A, X, S1, G)
    d2 = nnls_vjp(A, X, S1, G)
    assert all(np.array_equal(u, v) for u, v in zip(d1, d2, strict=True))
    kkt_residual(A, X, S1)


def test_accepts_lists_float32_integers_and_sparse():
    rng = np.random.default_rng(9)
    A, X = rng.random((12, 3)), rng.random((12, 5))
    S = nnls(A, X)
    assert rel(nnls(A.tolist(), X.tolist()), S) <= 1e-14
    assert rel(nnls(A.astype(np.float32), X.astype(np.float32)), S) <= 1e-5
    assert nnls(A, scipy.sparse.csr_matrix(X)).dtype == np.float64
    assert rel(nnls(scipy.sparse.csc_matrix(A), scipy.sparse.csr_matrix(X)), S) <= 1e-14
    assert (
        rel(
            nnls(np.eye(3, dtype=int), np.array([[1, 2], [3, 4], [0, 1]])),
            np.array([[1.0, 2], [3, 4], [0, 1]]),
        )
        == 0
    )


# --------------------------------------------------------------------------------
# The derivative of q


def central_difference(fun, Z, h=1e-6):
    out = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        E = np.zeros_like(Z)
        E[idx] = h
        out[idx] = (fun(Z + E) - fun(Z - E)) / (2 * h)
    return out


def complementarity_margin(A, X, S):
    G = A.T @ (A @ S - X)
    return G[S == 0].min() / np.abs(A.T @ X).max() if (S == 0).any() else np.inf


@pytest.mark.parametrize("shape", [(12, 4, 10), (20, 6, 8), (9, 3, 15), (30, 8, 5)])
def test_vjp_matches_finite_differences(shape):
    N, k, M = shape
    tried = 0
    for seed in range(50):  # keep instances whose supports are stable under the FD step
        rng = np.random.default_rng(1000 * N + seed)
        A, X = rng.random((N, k)) + 0.05, rng.random((N, M))
        S = nnls(A, X)
        if complementarity_margin(A, X, S) < 1e-4 or not (S == 0).any():
            continue
        tried += 1
        G = rng.standard_normal(S.shape)
        dA, dX = nnls_vjp(A, X, S, G)
        fd_A = central_difference(lambda A_, X=X, G=G: np.sum(G * nnls(A_, X)), A)
        fd_X = central_difference(lambda X_, A=A, G=G: np.sum(G * nnls(A, X_)), X)
        assert np.linalg.norm(dA - fd_A) <= 1e-6 * np.linalg.norm(fd_A)
        assert np.linalg.norm(dX - fd_X) <= 1e-6 * np.linalg.norm(fd_X)
        if tried == 3:
            break
    assert tried == 3, "not enough instances with a stable support"


def test_vjp_equals_per_column_pseudoinverse_formula():
    """The paper's form per column: d = (A_T^+)^T g, dA_T = r d^T (A_T^+)^T - d s^T."""
    rng = np.random.default_rng(11)
    A, X = rng.random((25, 7)), rng.random((25, 30))
    S = nnls(A, X)
    G = rng.standard_normal(S.shape)
    dA, dX = nnls_vjp(A, X, S, G)
    dA_ref = np.zeros_like(A)
    for m in range(X.shape[1]):
        T = S[:, m] > 0
        pinv = np.linalg.pinv(A[:, T])  # |T| x N
        d = pinv.T @ G[T, m]
        r = X[:, m] - A[:, T] @ S[T, m]
        assert np.allclose(dX[:, m], d, atol=1e-12)
        dA_ref[:, T] += np.outer(r, pinv @ d) - np.outer(d, S[T, m])
    assert np.allclose(dA, dA_ref, atol=1e-11)


def test_vjp_rank_deficient_support_warns_and_uses_least_squares():
    rng = np.random.default_rng(12)
    A, X = rng.random((20, 4)), rng.random((20, 6))
    A_dup = np.hstack([A, A[:, :1]])
    S = nnls(A_dup, X)
    G = rng.standard_normal(S.shape)
    with pytest.warns(RankDeficiencyWarning, match="rank-deficient for"):
        dA, dX = nnls_vjp(A_dup, X, S, G)
    assert np.all(np.isfinite(dA)) and np.all(np.isfinite(dX))
    for m in range(X.shape[1]):  # minimum-norm least squares on each support
        T = S[:, m] > 0
        assert np.allclose(
            dX[:, m], np.linalg.pinv(A_dup[:, T]).T @ G[T, m], atol=1e-10
        )


def test_vjp_no_warning_when_full_rank():
    rng = np.random.default_rng(13)
    A, X = rng.random((20, 4)), rng.random((20, 6))
    S = nnls(A, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nnls_vjp(A, X, S, np.ones_like(S))


def test_vjp_zero_columns_of_A_outside_every_support():
    rng = np.random.default_rng(14)
    A, X = rng.random((20, 4)), rng.random((20, 6))
    A[:, 2] = 0.0
    S = nnls(A, X)
    assert np.all(S[2] == 0)
    dA, _ = nnls_vjp(A, X, S, rng.standard_normal(S.shape))
    assert np.all(dA[:, 2] == 0)


# --------------------------------------------------------------------------------
# Validation: bad input raises a clear error naming the argument


GOOD_A = np.ones((4, 2))
GOOD_X = np.ones((4, 3))


@pytest.mark.parametrize(
    ("A", "X", "error", "message"),
    [
        (
            np.ones(4),
            GOOD_X,
            ValueError,
            r"A must be a 2-D array; got an array of shape \(4,\)",
        ),
        (
            GOOD_A,
            np.ones(4),
            ValueError,
            r"X must be a 2-D array; got an array of shape \(4,\)",
        ),
        (GOOD_A, np.ones((4, 3, 1)), ValueError, "X must be a 2-D array"),
        (
            -GOOD_A,
            GOOD_X,
            ValueError,
            r"A must be nonnegative; it has 8 negative entries",
        ),
        (
            GOOD_A,
            np.where(np.eye(4, 3) > 0, -2.0, 1.0),
            ValueError,
            r"X must be nonnegative; it has 3 negative entries \(the smallest is -2 at "
            r"row 0",
        ),
        (
            GOOD_A,
            np.full((4, 3), np.nan),
            ValueError,
            "X contains 12 NaN or infinite entries",
        ),
        (
            np.array([[1.0, np.inf]] * 4),
            GOOD_X,
            ValueError,
            r"A contains 4 NaN or infinite entries \(the first at row 0, column 1\)",
        ),
        (
            np.ones((5, 2)),
            GOOD_X,
            ValueError,
            "A and X must have the same number of rows: A has 5, X has 4",
        ),
        (
            np.ones((4, 0)),
            GOOD_X,
            ValueError,
            "A must have at least one row and one column",
        ),
        (
            GOOD_A,
            np.ones((4, 0)),
            ValueError,
            "X must have at least one row and one column",
        ),
        (np.full((4, 2), "a"), GOOD_X, TypeError, "A must be an array of real numbers"),
        (GOOD_A, GOOD_X + 1j, TypeError, "X must be real"),
        (GOOD_A, [[1.0, 2.0], [3.0]], ValueError, "X must be a 2-D array of numbers"),
    ],
)
def test_nnls_validation(A, X, error, message):
    with pytest.raises(error, match=message):
        nnls(A, X)


def test_nnls_validation_of_options():
    with pytest.raises(
        ValueError, match=r"support must have shape \(2, 3\); got \(3, 2\)"
    ):
        nnls(GOOD_A, GOOD_X, support=np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="support must contain only 0 and 1"):
        nnls(GOOD_A, GOOD_X, support=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="max_iter must be at least 1; got 0"):
        nnls(GOOD_A, GOOD_X, max_iter=0)
    with pytest.raises(TypeError, match=r"max_iter must be an integer; got 2\.5"):
        nnls(GOOD_A, GOOD_X, max_iter=2.5)


def test_vjp_and_kkt_validation():
    S = nnls(GOOD_A, GOOD_X)
    with pytest.raises(
        ValueError, match=r"G must have shape \(2, 3\) \(columns of A x columns"
    ):
        nnls_vjp(GOOD_A, GOOD_X, S, np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"S must have shape \(2, 3\)"):
        nnls_vjp(GOOD_A, GOOD_X, S.T, np.ones((2, 3)))
    with pytest.raises(ValueError, match="S must be nonnegative"):
        nnls_vjp(GOOD_A, GOOD_X, -np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="G contains 1 NaN"):
        nnls_vjp(GOOD_A, GOOD_X, S, np.array([[np.nan, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"S must have shape \(2, 3\)"):
        kkt_residual(GOOD_A, GOOD_X, np.ones((2, 2)))
    with pytest.raises(ValueError, match="A and X must have the same number of rows"):
        kkt_residual(GOOD_A, np.ones((3, 3)), np.ones((2, 3)))


# ---------------------------------------------------------------------------------
# The masked problem: min ||W * (X - A S)|| column by column


def cvxpy_masked_nnls(A, X, W):
    S = cp.Variable((A.shape[1], X.shape[1]), nonneg=True)
    residual = cp.multiply(W.astype(float), np.where(W, X, 0.0) - A @ S)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(residual)))
    problem.solve(
        solver=cp.OSQP, eps_abs=1e-8, eps_rel=1e-8, polishing=True, max_iter=200_000
    )
    assert problem.status == cp.OPTIMAL
    return S.value


@pytest.mark.parametrize("seed", range(8))
def test_masked_nnls_matches_cvxpy_and_per_column_scipy(seed):
    rng = np.random.default_rng(500 + seed)
    A, X = rng.random((30, 6)), rng.random((30, 25))
    W = rng.random(X.shape) < 0.7
    W[:, 0] = False  # a column with nothing observed: its solution is 0
    X_nan = np.where(W, X, np.nan)
    S, info = nnls(A, X_nan, W=W, return_info=True)
    assert info.kkt_residual <= 1e-10
    assert kkt_residual(A, X_nan, S, W=W) <= 1e-10
    assert np.all(S[:, 0] == 0)
    ref = np.column_stack(
        [
            scipy.optimize.nnls(A[W[:, j]], X[W[:, j], j])[0]
            if W[:, j].any()
            else np.zeros(6)
            for j in range(25)
        ]
    )
    assert rel(S, ref) <= 1e-8
    assert rel(S, cvxpy_masked_nnls(A, X, W)) <= 1e-8
    # a full mask is the unmasked problem
    assert rel(nnls(A, X, W=np.ones_like(W)), nnls(A, X)) <= 1e-12


def test_masked_vjp_matches_finite_differences():
    tried = 0
    for seed in range(40):
        rng = np.random.default_rng(900 + seed)
        A, X = rng.random((14, 4)) + 0.05, rng.random((14, 9))
        W = rng.random(X.shape) < 0.75
        S = nnls(A, X, W=W)
        G = A.T @ (W * (A @ S - X))
        if not (S == 0).any() or G[S == 0].min() < 1e-4 * np.abs(A.T @ (W * X)).max():
            continue
        tried += 1
        U = rng.standard_normal(S.shape)
        dA, dX = nnls_vjp(A, X, S, U, W=W)
        fd_A = central_difference(
            lambda A_, X=X, W=W, U=U: np.sum(U * nnls(A_, X, W=W)), A
        )
        fd_X = central_difference(
            lambda X_, A=A, W=W, U=U: np.sum(U * nnls(A, X_, W=W)), X
        )
        assert np.linalg.norm(dA - fd_A) <= 1e-6 * np.linalg.norm(fd_A)
        assert np.linalg.norm(dX - fd_X) <= 1e-6 * np.linalg.norm(fd_X)
        assert np.all(dX[~W] == 0)  # unobserved entries do not influence S
        if tried == 3:
            break
    assert tried == 3


# ---------------------------------------------------------------------------------
# Exactness at any conditioning


def ill_conditioned(cond, seed, noise, N=60, k=8, M=120):
    """A with two nearly dependent pairs of topics (condition number about ``cond``)
    and data near (noise 0: in) the cone of A, with sparse coefficients."""
    rng = np.random.default_rng(seed)
    A = rng.random((N, k))
    A[:, 7] = A[:, 6] + rng.random(N) * 8 / cond
    A[:, 5] = A[:, 4] + rng.random(N) * 80 / cond
    S = rng.random((k, M)) * (rng.random((k, M)) < 0.6)
    return A, A @ S + noise * rng.random((N, M))


def test_the_issue_example_is_exact():
    rng = np.random.default_rng(0)
    A = rng.random((60, 8))
    A[:, 7] = A[:, 6] + 1e-6 * rng.random(60)  # cond(A) about 1e7
    X = A @ (rng.random((8, 200)) * (rng.random((8, 200)) < 0.6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S, info = nnls(A, X, return_info=True)
    assert info.kkt_residual <= 1e-10 and kkt_residual(A, X, S) <= 1e-10
    assert info.n_fallback == 0
    assert np.linalg.norm(X - A @ S) <= 1e-12 * np.linalg.norm(X)


@pytest.mark.parametrize("cond", [1e4, 1e6, 1e8])
@pytest.mark.parametrize("noise", [0.0, 1e-6, 1e-3])
def test_ill_conditioned_near_the_cone_matches_scipy(cond, noise):
    """KKT residual at most 1e-10, and scipy's objective to 1e-10 relative (above a
    floor of 1e-15 ||X||^2, the objective's rounding level for data in the cone)."""
    for seed in range(10):
        A, X = ill_conditioned(cond, seed, noise)
        assert cond / 10 <= np.linalg.cond(A) <= cond * 10
        S, info = nnls(A, X, return_info=True)
        assert info.kkt_residual <= 1e-10
        assert kkt_residual(A, X, S) <= 1e-10
        f = np.sum((X - A @ S) ** 2)
        f_ref = np.sum((X - A @ scipy_nnls(A, X)) ** 2)
        assert f <= f_ref * (1 + 1e-10) + 1e-15 * np.sum(X**2)


def objective_rounding(f, X, k):
    """A bound on the rounding error of two objectives near ``f`` (column by column):
    ``4 (k + 1) eps ||r|| ||x||``, from that of the residual ``x - A s``."""
    return 4 * (k + 1) * np.finfo(float).eps * np.sqrt(f * np.sum(X**2, axis=0))


@pytest.mark.parametrize("cond", [1e4, 1e5, 1e6, 1e8])
@pytest.mark.parametrize("noise", [1e-10, 1e-8, 1e-6, 1e-3])
def test_ill_conditioned_matches_scipy_column_by_column(cond, noise):
    """Each column's objective is scipy's to 1e-10 relative plus the rounding of the
    two objectives, 4 (k + 1) eps ||r|| ||x|| (r: scipy's residual; near the cone the
    rounding term dominates). Without the polish the worst columns missed it, by up to
    1e-2 (relative) at cond 1e8 and noise 1e-6, and 8e-3 at noise 1e-8 and 1e-10."""
    for seed in range(10):
        A, X = ill_conditioned(cond, seed, noise)
        S = nnls(A, X)
        f = np.sum((X - A @ S) ** 2, axis=0)
        f_ref = np.sum((X - A @ scipy_nnls(A, X)) ** 2, axis=0)
        rounding = objective_rounding(f_ref, X, A.shape[1])
        assert np.all(f - f_ref <= 1e-10 * f_ref + rounding)


def test_lawson_hanson_polish_returns_its_support_and_never_goes_up():
    """The exchanges of the polish, from the pivoting's answer with one topic freed
    where it is off the support: the support returned is that of x (a freed variable
    whose coefficient came out <= 0 is not left in it), and no column's objective
    rises beyond the rounding of the objectives."""
    for seed in range(10):
        A, X = ill_conditioned(1e8, seed, 1e-6)
        red = nnls_module._reduce(A, X)
        x, F, _, _, _ = nnls_module._bpp(red, None, 100)
        free = ~F & (np.arange(8)[:, None] == 7)  # free topic 7 where it is off
        f = np.sum((X - A @ red.unscaled(x)) ** 2, axis=0)
        # rtol 0 frees a variable at every step: the last one may not be solved for
        for steps, rtol in [(10, nnls_module._RTOL), (1, 0.0), (2, 0.0)]:
            x2, F2 = nnls_module._lawson_hanson(
                red, x.copy(), F.copy(), steps, rtol, free=free
            )
            assert np.array_equal(F2, x2 > 0)
            f2 = np.sum((X - A @ red.unscaled(x2)) ** 2, axis=0)
            assert np.all(f2 <= f + objective_rounding(f, X, A.shape[1]))


@pytest.mark.parametrize("cond", [1e4, 1e6, 1e8])
def test_ill_conditioned_near_the_cone_matches_cvxpy(cond):
    A, X = ill_conditioned(cond, 0, 1e-3, M=30)
    S = nnls(A, X)
    variable = cp.Variable(S.shape, nonneg=True)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X - A @ variable)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "solution may be inaccurate": compared anyway
        problem.solve(solver=cp.CLARABEL)
    f, f_cvx = np.sum((X - A @ S) ** 2), np.sum((X - A @ variable.value) ** 2)
    assert f <= f_cvx * (1 + 1e-10)  # ours is never worse than cvxpy's
    assert kkt_residual(A, X, S) <= 1e-10


def test_rank_deficient_support_gives_the_minimum_norm_solution():
    a = np.random.default_rng(21).random((10, 1))
    A = np.hstack([a, a, 0.5 * a])  # three proportional topics
    X = np.hstack([2 * a, 3 * a])
    with pytest.warns(RankDeficiencyWarning, match="minimum-norm"):
        S, info = nnls(A, X, return_info=True)
    # Minimum norm for unit-norm topics: min ||(s1, s2, s3 / 2)|| subject to
    # s1 + s2 + s3 / 2 = c gives s = (c / 3) (1, 1, 2), whatever the topics' scales.
    np.testing.assert_allclose(S, np.outer([1, 1, 2], [2, 3]) / 3, rtol=1e-12)
    assert info.n_rank_deficient == 2 and info.kkt_residual <= 1e-14


def test_ill_conditioned_supports_are_counted():
    A, X = ill_conditioned(1e8, 0, 0.0)
    info = nnls(A, X, return_info=True)[1]
    assert info.n_ill_conditioned > 0 and not info.rank_deficient


def test_solve_on_supports_matches_a_direct_solve():
    rng = np.random.default_rng(22)
    A, G = rng.random((30, 20)), rng.standard_normal((20, 50))
    F = rng.random((20, 50)) < 0.5
    Z, singular = nnls_module._solve_on_supports(A.T @ A, F, G)
    assert not singular.any()
    for j in range(50):
        T = F[:, j]
        z = np.linalg.solve((A.T @ A)[np.ix_(T, T)], G[T, j])
        np.testing.assert_allclose(Z[T, j], z, rtol=1e-9, atol=1e-12)
        assert np.all(Z[~T, j] == 0)


def nearly_full_supports(seed, k=20, m=1200, cond=None):
    """A reduced problem whose columns have many distinct, nearly full supports (the
    first layer of Neural NMF), with some full and some half-empty ones."""
    rng = np.random.default_rng(seed)
    A = rng.random((200, k)) + 0.5 * np.eye(200, k)
    if cond is not None:  # two nearly equal topics
        A[:, 1] = A[:, 0] + np.sqrt(1 / cond) * rng.random(200)
    red = nnls_module._reduce(A, rng.random((200, m)))
    F = rng.random((k, m)) < 0.9
    F[:, :5] = True  # full supports: nothing to complement
    F[: k // 2, 5:10] = False  # the most topics off a support the complement takes
    return red, F


def test_complement_solves_match_the_blocks():
    red, F = nearly_full_supports(24)
    fac = nnls_module._factor(red.C, F, red.R, red)
    kinds = {type(p).__name__ for p in fac.parts}
    assert "_Complement" in kinds  # the path under test was taken
    blocks = nnls_module._factor(red.C, F, red.R)  # without red: blocks only
    assert all(type(p).__name__ == "_Part" for p in blocks.parts)
    for fa in (fac, blocks):
        assert not fa.singular.any() and not fa.hard.any() and not fa.refine
    Z, Z_blocks = nnls_module._apply(fac, red.B), nnls_module._apply(blocks, red.B)
    assert np.all(Z[~F] == 0)
    np.testing.assert_allclose(Z, Z_blocks, rtol=0, atol=1e-12 * np.abs(Z).max())
    for j in (0, 7, 100):  # against a direct solve
        T = F[:, j]
        z = np.linalg.solve(red.C[np.ix_(T, T)], red.B[T, j])
        np.testing.assert_allclose(Z[T, j], z, rtol=1e-11)


def test_complement_needs_a_well_conditioned_gram_matrix():
    red, F = nearly_full_supports(25, cond=1e8)
    assert red.inverse() is None
    fac = nnls_module._factor(red.C, F, red.R, red)
    assert all(type(p).__name__ == "_Part" for p in fac.parts)


def test_nnls_with_the_complement_is_exact_and_warm_starts(monkeypatch):
    rng = np.random.default_rng(26)
    A = rng.random((400, 20)) + np.eye(400, 20)
    coefficients = rng.random((20, 1500)) * (rng.random((20, 1500)) < 0.85)
    X = A @ coefficients + 0.01 * rng.random((400, 1500))
    calls = []
    original = nnls_module._complement_part

    def counted(*args):
        taken = original(*args)
        calls.append(0 if taken is None else int(taken.sum()))
        return taken

    monkeypatch.setattr(nnls_module, "_complement_part", counted)
    S, info = nnls(A, X, return_info=True)
    A_new = A * (1 + 0.01 * rng.standard_normal(A.shape)).clip(0.5)
    S_warm, info_warm = nnls(A_new, X, support=S > 0, return_info=True)
    assert max(calls) > 500  # most columns went through the complement
    monkeypatch.setattr(nnls_module, "_CHOLESKY_WORK", np.inf)  # blocks only
    S_ref, S_warm_ref = nnls(A, X), nnls(A_new, X, support=S > 0)
    for got, ref, inf in ((S, S_ref, info), (S_warm, S_warm_ref, info_warm)):
        assert inf.kkt_residual <= 1e-14 and inf.n_fallback == 0
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    # The gradient reuses the forward solve's factors (the complement): the same as
    # from the blocks, which nnls_vjp uses when it factorizes from scratch.
    monkeypatch.undo()
    S, solution = nnls_module._nnls(A, X)
    assert any(type(p).__name__ == "_Complement" for p in solution.fac.parts)
    G = rng.standard_normal(S.shape)
    dA, dX, _ = nnls_module._vjp(A, X, S, G, None, solution)
    dA_ref, dX_ref = nnls_vjp(A, X, S, G)
    np.testing.assert_allclose(dA, dA_ref, rtol=0, atol=1e-11 * np.abs(dA_ref).max())
    np.testing.assert_allclose(dX, dX_ref, rtol=0, atol=1e-11 * np.abs(dX_ref).max())


@pytest.mark.parametrize("cond", [3, 60, 200, 1e5])  # unit-norm Gram: 1e2 to 1e10
def test_gram_path_only_below_the_threshold_and_both_paths_exact(cond):
    A, X = ill_conditioned(cond, seed=0, noise=1e-3)
    unit = A / np.linalg.norm(A, axis=0)
    kappa = np.linalg.cond(unit.T @ unit)
    red = nnls_module._reduce(A, X)
    gram = "sigma" in red.cache  # the Gram path leaves the singular values of R
    assert gram == (kappa <= nnls_module._COND_EXACT)
    np.testing.assert_allclose(red.R.T @ red.R, red.C, atol=1e-13)
    np.testing.assert_array_equal(np.tril(red.R, -1), 0.0)  # triangular either way
    if gram:  # c is formed only when refinement asks for it, and then R^T c = B
        assert red.c is None
        np.testing.assert_allclose(red.R.T @ red.rhs(), red.B, rtol=1e-12)
    S, info = nnls(A, X, return_info=True)
    assert info.kkt_residual <= 1e-10
    S_ref = scipy_nnls(A, X)
    f, f_ref = (np.sum((X - A @ T) ** 2) for T in (S, S_ref))
    assert f <= f_ref * (1 + 1e-10)
    if gram:  # the normal equations lose about u * cond(C)
        assert rel(S, S_ref) <= 10 * np.finfo(float).eps * kappa


def test_refinement_on_the_gram_path_forms_c_and_keeps_the_solution():
    A, X = ill_conditioned(60, seed=2, noise=1e-3)  # cond(C) about 6e3: Gram path
    red = nnls_module._reduce(A, X)
    assert red.c is None
    F = np.random.default_rng(3).random((A.shape[1], X.shape[1])) < 0.7
    fac = nnls_module._factor(red.C, F, red.R)
    x, _ = nnls_module._solve(red, fac)
    x_refined, y = nnls_module._solve(red, replace(fac, refine=True))
    assert red.c is not None  # the refinement asked for c
    np.testing.assert_allclose(x_refined, x, rtol=0, atol=1e-12 * np.abs(x).max())
    assert np.all(y[F] == 0)


def test_shared_block_products_match_the_batched_products(monkeypatch):
    rng = np.random.default_rng(4)
    P = rng.standard_normal((6, 9, 9))
    P = P + np.swapaxes(P, 1, 2)  # symmetric, as the block inverses are
    which = np.concatenate([np.zeros(700, int), rng.integers(1, 6, 300)])
    rng.shuffle(which)
    g = rng.standard_normal((1000, 9))
    direct = np.einsum("jab,jb->ja", P[which], g)
    monkeypatch.setattr(nnls_module, "_SHARED_BLOCK", 9 * 9 * 100)
    shared = nnls_module._block_products(P, which, g)  # block 0 shared, the rest not
    np.testing.assert_allclose(shared, direct, rtol=1e-13, atol=1e-13)
    monkeypatch.setattr(nnls_module, "_SHARED_BLOCK", np.inf)
    batched = nnls_module._block_products(P, which, g)
    np.testing.assert_allclose(batched, direct, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc"])
def test_times_t_is_X_times_H_transposed(layout):
    rng = np.random.default_rng(5)
    X = rng.random((70, 50)) * (rng.random((70, 50)) < 0.3)
    H = rng.random((6, 50))
    expected = X @ H.T
    if layout in ("C", "F"):
        X = np.asarray(X, order=layout)
    else:
        X = getattr(scipy.sparse, f"{layout}_array")(X)
    np.testing.assert_allclose(times_t(X, H), expected, rtol=1e-13)


# ---------------------------------------------------------------------------------
# Warnings: the library's own classes, attributed to the caller's line


def only_warning(record, category):
    found = [w for w in record if issubclass(w.category, category)]
    assert len(found) == 1, [str(w.message) for w in record]
    return found[0]


def test_accuracy_warning_points_at_the_callers_line(monkeypatch):
    monkeypatch.setattr(nnls_module, "_KKT_TOL", 0.0)  # every residual is too large
    rng = np.random.default_rng(23)
    A, X = rng.random((20, 4)), rng.random((20, 6))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = next_line()
        nnls(A, X)
    w = only_warning(record, AccuracyWarning)
    assert w.filename == __file__ and w.lineno == line
    assert "KKT residual" in str(w.message)


def test_fallback_and_rank_warnings_point_at_the_callers_line():
    rng = np.random.default_rng(24)
    A, X = rng.random((50, 15)) ** 3, rng.random((50, 40)) ** 2
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = next_line()
        nnls(A, X, max_iter=1)
    w = only_warning(record, ConvergenceWarning)
    assert (w.filename, w.lineno) == (__file__, line)
    assert "max_iter=1" in str(w.message)
    A_dup = np.hstack([A, A[:, :1]])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = next_line()
        nnls(A_dup, X)
    w = only_warning(record, RankDeficiencyWarning)
    assert (w.filename, w.lineno) == (__file__, line)


def test_warnings_from_nested_calls_point_at_the_callers_line():
    """Through forward, neural_nmf and nmf(anls), the warning names the user's line."""
    rng = np.random.default_rng(25)
    X = rng.random((30, 12))
    a = rng.random((30, 3))
    A_dup = [np.hstack([a, a[:, :1]]), rng.random((4, 2))]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = next_line()
        forward(A_dup, X)
    w = only_warning(record, RankDeficiencyWarning)
    assert (w.filename, w.lineno) == (__file__, line)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = next_line()
        neural_nmf(X, [4, 2], init=A_dup, max_epochs=2)
    w = only_warning(record, RankDeficiencyWarning)
    assert (w.filename, w.lineno) == (__file__, line)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = next_line()
        nmf(X, 3, method="anls", max_iter=2)
    w = only_warning(record, ConvergenceWarning)
    assert (w.filename, w.lineno) == (__file__, line)


def test_no_warning_on_an_ordinary_problem():
    rng = np.random.default_rng(26)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = nnls(rng.random((40, 10)), rng.random((40, 30)), return_info=True)[1]
    assert info.n_fallback == info.n_rank_deficient == 0
