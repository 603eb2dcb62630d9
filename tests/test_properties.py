"""Property-based tests (hypothesis): claims that must hold for *every* input.

Each property is tried on at least 200 generated inputs (the "ci" profile in
tests/conftest.py: derandomized, so every run tries the same inputs). The generated
data are small (up to 8 x 8), nonnegative, with exact zeros mixed in, and scaled by
1e-6, 1 or 1e6. What is tried:

- nnls: satisfies the KKT conditions, and matches cvxpy's optimal objective;
- nnls_vjp: matches a central finite difference of <G, q(A, X)> in a random direction,
  wherever strict complementarity holds (the derivative exists there);
- every solver (nmf with mu, hals and anls, ssnmf, hnmf, deep_nmf, neural_nmf) returns
  finite, nonnegative factors and never writes to its (read-only) arguments;
- multiplicative updates (nmf with mu, and ssnmf) never increase their objective;
- loss_and_grad: the Neural NMF gradient matches a finite difference of the loss;
- the same random_state gives identical results.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
from helpers import factors, finite_nonnegative, quiet, read_only
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nnmf_lib as nl


@st.composite
def nonnegative_matrices(draw, rows, cols, *, scaled=True):
    """A rows x cols nonnegative matrix: entries in [0, 1], some exactly 0."""
    values = draw(
        arrays(np.float64, (rows, cols), elements=st.floats(0.0, 1.0, width=32))
    )
    zeros = draw(arrays(np.bool_, (rows, cols), elements=st.booleans()))
    if zeros.all():
        zeros[0, 0] = False
    values = np.where(zeros & draw(st.booleans()), 0.0, values)
    scale = draw(st.sampled_from([1e-6, 1.0, 1e6])) if scaled else 1.0
    return values * scale


@st.composite
def nnls_instances(draw):
    N = draw(st.integers(1, 8))
    k = draw(st.integers(1, 6))
    M = draw(st.integers(1, 8))
    A = draw(nonnegative_matrices(N, k, scaled=False))
    X = draw(nonnegative_matrices(N, M))
    return A, X


@st.composite
def data_and_rank(draw, min_size=2):
    N = draw(st.integers(min_size, 8))
    M = draw(st.integers(min_size, 8))
    X = draw(nonnegative_matrices(N, M))
    k = draw(st.integers(1, min(N, M)))
    return X, k


# --- nonnegative least squares ----------------------------------------------------


@given(nnls_instances())
def test_nnls_satisfies_kkt(instance):
    A, X = instance
    S = quiet(nl.nnls, read_only(A), read_only(X))
    assert S.shape == (A.shape[1], X.shape[1]) and finite_nonnegative(S)
    assert nl.kkt_residual(A, X, S) < 1e-8


@given(nnls_instances())
def test_nnls_matches_cvxpy(instance):
    A, X = instance
    scale = max(np.abs(X).max(), 1e-300)
    A, X = A, X / scale  # cvxpy's tolerances are absolute: compare at unit scale
    S = quiet(nl.nnls, A, X)
    variable = cp.Variable(S.shape, nonneg=True)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X - A @ variable)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "may be inaccurate": ours is compared anyway
        problem.solve(solver=cp.CLARABEL)
    ours = float(np.sum((X - A @ S) ** 2))
    # Ours is optimal: never worse than cvxpy's, and cvxpy is never much better.
    assert ours <= problem.value + 1e-7 * max(1.0, np.sum(X**2))


@given(nnls_instances(), st.integers(0, 2**32 - 1))
def test_nnls_vjp_matches_finite_differences(instance, seed):
    A, X = instance
    rng = np.random.default_rng(seed)
    A = A + 0.1 * rng.random(A.shape)  # away from exact zeros of A
    assume(np.linalg.matrix_rank(A) == A.shape[1])
    X = X / max(X.max(), 1e-300) + 0.05  # positive, so X +- h E stays nonnegative
    S = nl.nnls(A, X)
    gradient = A.T @ (A @ S - X)  # of the NNLS objective, per entry of S
    scale = max(np.abs(A.T @ X).max(), 1e-12)
    margin = np.where(S > 0, S / max(S.max(), 1e-300), gradient / scale)
    assume(margin.min() > 1e-3)  # strict complementarity, with room for h
    G = rng.standard_normal(S.shape)
    dA, dX = nl.nnls_vjp(A, X, S, G)
    EA, EX = rng.standard_normal(A.shape), rng.standard_normal(X.shape)
    h = 1e-7
    loss = lambda A_, X_: float(np.sum(G * nl.nnls(A_, X_)))  # noqa: E731
    fd = (loss(A + h * EA, X + h * EX) - loss(A - h * EA, X - h * EX)) / (2 * h)
    exact = float(np.sum(dA * EA) + np.sum(dX * EX))
    assert abs(fd - exact) <= 1e-5 * max(1.0, abs(exact))


# --- every solver ------------------------------------------------------------------


SOLVERS = {
    "nmf/mu": lambda X, k, rs: nl.nmf(X, k, method="mu", max_iter=20, random_state=rs),
    "nmf/hals": lambda X, k, rs: nl.nmf(X, k, max_iter=20, random_state=rs),
    "nmf/anls": lambda X, k, rs: nl.nmf(X, k, method="anls", max_iter=5),
    "ssnmf": lambda X, k, rs: nl.ssnmf(
        X,
        k,
        read_only(nl.one_hot(np.arange(X.shape[1]) % 2)),
        max_iter=20,
        random_state=rs,
    ),
    "hnmf": lambda X, k, rs: nl.hnmf(X, [k, 1], max_iter=20, random_state=rs),
    "deep_nmf": lambda X, k, rs: nl.deep_nmf(
        X, [k, 1], forward_iter=10, max_iter=3, random_state=rs
    ),
    "neural_nmf": lambda X, k, rs: nl.neural_nmf(
        X, [k, 1], max_epochs=3, random_state=rs
    ),
}


@given(data_and_rank(), st.sampled_from(sorted(SOLVERS)), st.integers(0, 1000))
def test_every_solver_returns_finite_nonnegative_factors(data, solver, seed):
    X, k = data
    Xr = read_only(X)  # a write to the caller's array would raise
    result = quiet(SOLVERS[solver], Xr, k, seed)
    assert finite_nonnegative(*factors(result))
    np.testing.assert_array_equal(Xr, X)


@given(data_and_rank(), st.sampled_from(sorted(SOLVERS)), st.integers(0, 1000))
def test_same_random_state_same_result(data, solver, seed):
    X, k = data
    first = quiet(SOLVERS[solver], X, k, seed)
    second = quiet(SOLVERS[solver], X, k, seed)
    for a, b in zip(factors(first), factors(second), strict=True):
        np.testing.assert_array_equal(a, b)


@given(data_and_rank(), st.integers(0, 1000), st.booleans())
def test_multiplicative_updates_never_increase_the_objective(data, seed, labelled):
    X, k = data
    if labelled:
        Y = nl.one_hot(np.arange(X.shape[1]) % 2)
        result = quiet(nl.ssnmf, X, k, Y, lam=0.5, max_iter=30, random_state=seed)
    else:
        result = quiet(nl.nmf, X, k, method="mu", max_iter=30, random_state=seed)
    objective = result.objective
    # Rounding: 1e-10 of the start, or a residual of norm 1e-12 ||X|| (an exact fit).
    slack = 1e-10 * objective[0] + 1e-24 * np.sum(X**2)
    assert np.all(np.diff(objective) <= slack)


# --- the Neural NMF gradient -------------------------------------------------------


@given(data_and_rank(min_size=3), st.integers(0, 2**32 - 1), st.booleans())
def test_neural_gradient_matches_finite_differences(data, seed, energy):
    X, k0 = data
    rng = np.random.default_rng(seed)
    X = X / max(X.max(), 1e-300)
    assume(np.linalg.norm(X) > 0.1)
    k1 = max(1, k0 - 1)
    A = [rng.random((X.shape[0], k0)) + 0.1, rng.random((k0, k1)) + 0.1]
    loss = "energy" if energy else "reconstruction"
    S = nl.forward(A, X)
    # The loss is differentiable where every layer has strict complementarity.
    inputs = [X, S[0]]
    for a, s, x in zip(A, S, inputs, strict=True):
        gradient = a.T @ (a @ s - x)
        scale = max(np.abs(a.T @ x).max(), 1e-12)
        margin = np.where(s > 0, s / max(s.max(), 1e-300), gradient / scale)
        assume(margin.min() > 1e-3)
    value, grads, _ = nl.loss_and_grad(A, X, loss=loss)
    directions = [rng.standard_normal(a.shape) for a in A]
    h = 1e-7

    def at(t):
        shifted = [a + t * d for a, d in zip(A, directions, strict=True)]
        return nl.loss_and_grad(shifted, X, loss=loss)[0]

    fd = (at(h) - at(-h)) / (2 * h)
    exact = sum(float(np.sum(g * d)) for g, d in zip(grads, directions, strict=True))
    assert abs(fd - exact) <= 1e-5 * max(1.0, abs(exact), value)
