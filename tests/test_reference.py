"""Tests of nnmf_lib.reference: each teaching version against its fast counterpart.

The teaching versions must give the fast versions' numbers: to 1e-10 relative where the
answer is unique, and otherwise the same optimum (KKT residual at rounding level, same
objective or same fit). Inputs are random and degenerate: zero columns, duplicated
topics, k = 1, one sample, a column whose answer is found at once. The vector-Jacobian
product is also checked against central finite differences. A last test keeps the
promise that every teaching function is at most 40 lines of code.
"""

from __future__ import annotations

import ast
import doctest
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import nnmf_lib as nl
from nnmf_lib import reference as ref
from nnmf_lib.nmf import EPS, TINY

pytestmark = [
    pytest.mark.filterwarnings("ignore::nnmf_lib.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::nnmf_lib.RankDeficiencyWarning"),
]

RTOL = 1e-10


def assert_close(actual, desired, rtol=RTOL):
    """Agreement to ``rtol`` relative to the largest entry of ``desired``."""
    desired = np.asarray(desired)
    scale = max(float(np.abs(desired).max(initial=0.0)), TINY)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * scale)


def assert_all_close(actual, desired, rtol=RTOL):
    assert len(actual) == len(desired)
    for a, d in zip(actual, desired, strict=True):
        assert_close(a, d, rtol)


def bpp_columns(A, X):
    return np.column_stack([ref.bpp_column(A, x) for x in X.T])


def vjp_columns(A, X, S, G):
    dA, dX = np.zeros_like(A), np.zeros_like(X)
    for m in range(X.shape[1]):
        dA_m, dX[:, m] = ref.nnls_column_vjp(A, X[:, m], S[:, m], G[:, m])
        dA += dA_m
    return dA, dX


# ----------------------------------------------------------------------------- NNLS

NNLS_CASES = [
    "tall",
    "wide",
    "square",
    "k1",
    "one_sample",
    "zero_columns",
    "zero_topic",
]


def nnls_instance(kind, seed=0):
    rng = np.random.default_rng(seed)
    N, k, M = {"wide": (6, 10, 8), "square": (9, 9, 8), "k1": (12, 1, 7)}.get(
        kind, (25, 6, 9)
    )
    M = 1 if kind == "one_sample" else M
    A, X = rng.random((N, k)), rng.random((N, M))
    if kind == "zero_columns":
        X[:, ::3] = 0.0
        X *= rng.random(X.shape) < 0.6  # exact zeros inside X too
    if kind == "zero_topic":
        A[:, 2] = 0.0
    return A, X


@pytest.mark.parametrize("kind", NNLS_CASES)
def test_bpp_column_gives_the_solution_of_nnls(kind):
    A, X = nnls_instance(kind)
    S = bpp_columns(A, X)
    S_fast = nl.nnls(A, X)
    assert nl.kkt_residual(A, X, S) < 1e-13
    if np.linalg.matrix_rank(A) == A.shape[1]:  # unique minimizer
        assert_close(S, S_fast)
    else:  # wide or with a zero topic: the fit is unique, S need not be
        assert_close(A @ S, A @ S_fast)


def test_bpp_column_with_duplicated_topics_reaches_the_same_optimum():
    A, X = nnls_instance("tall", seed=1)
    A[:, -1] = A[:, 0]  # S is no longer unique; the fit A S is
    S, S_fast = bpp_columns(A, X), nl.nnls(A, X)
    assert nl.kkt_residual(A, X, S) < 1e-13
    assert_close(A @ S, A @ S_fast)
    assert_close(np.linalg.norm(X - A @ S), np.linalg.norm(X - A @ S_fast))


def test_bpp_column_stops_at_once_on_a_column_already_optimal():
    rng = np.random.default_rng(2)
    A = rng.random((10, 4))
    A[6:] = 0.0  # the last rows are outside the cone of A
    x = np.zeros(10)
    x[6:] = rng.random(4)  # A^T x = 0: s = 0 is optimal from the start
    np.testing.assert_array_equal(ref.bpp_column(A, x), np.zeros(4))
    np.testing.assert_array_equal(nl.nnls(A, x[:, None])[:, 0], np.zeros(4))
    s_true = np.array([0.5, 0.0, 2.0, 0.0])  # x exactly in the cone, sparse weights
    x = A @ s_true
    assert_close(ref.bpp_column(A, x), s_true, rtol=1e-12)
    assert_close(ref.bpp_column(A, x), nl.nnls(A, x[:, None])[:, 0])


def test_bpp_column_uses_the_backup_rule_and_still_solves_hard_problems():
    # Badly conditioned, wide and with many right-hand sides: full exchanges alone
    # can cycle; the count alpha/beta and Murty's rule must finish every column.
    rng = np.random.default_rng(3)
    A = rng.random((15, 12)) ** 4 + 1e-3 * rng.random((15, 12))
    X = rng.random((15, 40)) ** 3
    S = bpp_columns(A, X)
    assert nl.kkt_residual(A, X, S) < 1e-12
    assert_close(S, nl.nnls(A, X), rtol=1e-8)  # cond(A^T A) is about 1e5


def test_bpp_column_example_in_its_docstring_holds():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(ref.bpp_column, "bpp_column", globs=dict(vars(ref))):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# ------------------------------------------------------------------ derivative of q


@pytest.mark.parametrize("kind", ["tall", "k1", "one_sample", "zero_columns"])
def test_nnls_column_vjp_equals_nnls_vjp(kind):
    A, X = nnls_instance(kind, seed=4)
    S = nl.nnls(A, X)
    G = np.random.default_rng(5).standard_normal(S.shape)
    dA, dX = vjp_columns(A, X, S, G)
    dA_fast, dX_fast = nl.nnls_vjp(A, X, S, G)
    assert_close(dA, dA_fast)
    assert_close(dX, dX_fast)


def test_nnls_column_vjp_is_zero_on_an_empty_support():
    A = np.random.default_rng(6).random((8, 3))
    dA, dx = ref.nnls_column_vjp(A, np.zeros(8), np.zeros(3), np.ones(3))
    np.testing.assert_array_equal(dA, 0.0)
    np.testing.assert_array_equal(dx, 0.0)


def test_nnls_column_vjp_matches_central_finite_differences():
    rng = np.random.default_rng(7)
    A, x = rng.random((12, 5)), rng.random(12)
    s = ref.bpp_column(A, x)
    assert 0 < (s > 0).sum() < 5  # a nontrivial support with zeros off it
    g = rng.standard_normal(5)
    dA, dx = ref.nnls_column_vjp(A, x, s, g)

    def loss(A_, x_):
        return g @ ref.bpp_column(A_, x_)

    h = 1e-6
    fd_A, fd_x = np.zeros_like(A), np.zeros_like(x)
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        fd_A[idx] = (loss(A + E, x) - loss(A - E, x)) / (2 * h)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        fd_x[i] = (loss(A, x + e) - loss(A, x - e)) / (2 * h)
    assert_close(dA, fd_A, rtol=1e-7)
    assert_close(dx, fd_x, rtol=1e-7)


# ------------------------------------------------------------------------------ NMF

NMF_METHODS = [
    ("mu", ref.multiplicative_updates),
    ("hals", ref.hals),
    ("anls", ref.anls),
]
NMF_CASES = ["random", "k1", "one_sample", "zero_column", "duplicated_topics"]


def nmf_instance(kind, seed=8):
    rng = np.random.default_rng(seed)
    N, M, k = (14, 1, 1) if kind == "one_sample" else (14, 11, 4)
    k = 1 if kind == "k1" else k
    X = rng.random((N, M))
    if kind == "zero_column":
        X[:, 3] = 0.0
    A0, S0 = rng.random((N, k)) + 0.05, rng.random((k, M)) + 0.05
    if kind == "duplicated_topics":
        A0[:, 1] = A0[:, 0]
    return X, A0, S0


@pytest.mark.parametrize("kind", NMF_CASES)
@pytest.mark.parametrize(("method", "teaching"), NMF_METHODS)
def test_nmf_teaching_versions_equal_nmf(method, teaching, kind):
    X, A0, S0 = nmf_instance(kind)
    n_iter = 6  # fewer than the stopping rule's window: exactly n_iter iterations
    fast = nl.nmf(X, A0.shape[1], method=method, init=(A0, S0), max_iter=n_iter, tol=0)
    assert fast.n_iter == n_iter
    A, S = teaching(X, A0, S0, n_iter)
    if method == "anls" and kind == "duplicated_topics":
        # The first S-step has many minimizers; compare the optimum reached.
        f, f_fast = np.linalg.norm(X - A @ S), np.linalg.norm(X - fast.A @ fast.S)
        assert abs(f - f_fast) <= RTOL * f_fast
        assert nl.kkt_residual(S.T, X.T, A.T) < 1e-12  # A is optimal for its S
    else:
        assert_close(A, fast.A)
        assert_close(S, fast.S)


def test_teaching_nmf_does_not_modify_its_inputs():
    X, A0, S0 = nmf_instance("random")
    copies = [A0.copy(), S0.copy()]
    for _, teaching in NMF_METHODS:
        teaching(X, A0, S0, 2)
        np.testing.assert_array_equal(A0, copies[0])
        np.testing.assert_array_equal(S0, copies[1])


# ---------------------------------------------------------------------------- SSNMF


def ssnmf_instance(known_fraction=0.5, masked=True, seed=9):
    rng = np.random.default_rng(seed)
    X, A0, S0 = nmf_instance("random", seed)
    M = X.shape[1]
    Y = nl.one_hot(rng.integers(0, 3, M), 3)
    L = nl.label_mask(rng.random(M) < known_fraction, 3)
    W = (rng.random(X.shape) < 0.8).astype(float) if masked else None
    return X, Y, L, W, A0, rng.random((3, A0.shape[1])) + 0.05, S0


@pytest.mark.parametrize(
    ("known_fraction", "masked", "lam"),
    [(0.5, False, 0.3), (0.5, True, 2.0), (0.0, True, 1.0), (1.0, False, 0.0)],
)
def test_ssnmf_updates_equal_ssnmf(known_fraction, masked, lam):
    X, Y, L, W, A0, B0, S0 = ssnmf_instance(known_fraction, masked)
    k, n_iter = A0.shape[1], 7
    fast = nl.ssnmf(
        X, k, Y, L=L, W=W, lam=lam, init=(A0, S0), B0=B0, max_iter=n_iter, tol=0
    )
    assert fast.n_iter == n_iter
    A, B, S = ref.ssnmf_updates(X, Y, A0, B0, S0, lam, W, L, n_iter)
    assert_close(A, fast.A)
    assert_close(B, fast.B)
    assert_close(S, fast.S)


def test_ssnmf_updates_without_labels_weight_are_the_multiplicative_updates():
    X, Y, L, _, A0, B0, S0 = ssnmf_instance(masked=False)
    A, _, S = ref.ssnmf_updates(X, Y, A0, B0, S0, 0.0, None, L, 5)
    A_mu, S_mu = ref.multiplicative_updates(X, A0, S0, 5)
    assert_close(A, A_mu)
    assert_close(S, S_mu)


# ----------------------------------------------------------------------------- hNMF


@pytest.mark.parametrize(("method", "teaching"), NMF_METHODS)
@pytest.mark.parametrize("ranks", [[5, 3, 2], [4, 1]])
def test_hierarchical_nmf_equals_hnmf(method, teaching, ranks):
    X, _, _ = nmf_instance("random", seed=10)
    n_iter = 6
    fast = nl.hnmf(X, ranks, method=method, max_iter=n_iter, tol=0)
    assert [layer.n_iter for layer in fast.layers] == [n_iter] * len(ranks)
    A, S, B = ref.hierarchical_nmf(X, ranks, teaching, n_iter)
    assert B is None
    assert_all_close(A, fast.A)
    assert_all_close(S, fast.S)


def fast_classifier_start(data, k, Y, L, seed):
    """The random B0 that ssnmf draws inside hnmf (the only draw, for small data)."""
    _, S0 = nl.initialize(data, k)
    S0 = np.maximum(S0, EPS)
    target = float((L * Y).sum() / max(L.sum(), 1.0))
    scale = target / max(k * float(S0.mean()), TINY)
    normal = np.random.default_rng(seed).standard_normal((Y.shape[0], k))
    return np.maximum(EPS, scale * np.abs(normal))


def test_hierarchical_nmf_with_labels_equals_semi_supervised_hnmf():
    X, Y, L, _, _, _, _ = ssnmf_instance(seed=11)
    ranks, n_iter, seed = [5, 3], 6, 4
    fast = nl.hnmf(
        X, ranks, Y=Y, L=L, lam=0.5, max_iter=n_iter, tol=0, random_state=seed
    )
    B0 = fast_classifier_start(fast.S[0], ranks[-1], Y, L, seed)
    A, S, B = ref.hierarchical_nmf(X, ranks, ref.hals, n_iter, Y, L, 0.5, B0)
    assert_all_close(A, fast.A)
    assert_all_close(S, fast.S)
    assert_close(B, fast.B)


# ------------------------------------------------------------------------- Deep NMF


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_pool_and_unpool_equal_the_fast_ones(radius):
    rng = np.random.default_rng(12)
    S = rng.integers(0, 3, (4, 15)).astype(float)  # many ties
    segments = np.repeat([0, 1, 2], 5)
    for seg in (None, segments):
        P, where = ref.pool(S, radius, seg)
        P_fast, where_fast = nl.pool(S, radius, seg)
        np.testing.assert_array_equal(P, P_fast)
        np.testing.assert_array_equal(where, where_fast)
        Z = rng.standard_normal(S.shape)
        assert_close(ref.unpool(Z, where), nl.unpool(Z, where_fast))


@pytest.mark.parametrize(
    ("ranks", "radius", "labelled", "segmented"),
    [([5, 3], 1, False, False), ([5, 3, 2], 2, True, True), ([4], 1, True, False)],
)
def test_deep_nmf_sweeps_equal_deep_nmf(ranks, radius, labelled, segmented):
    X, Y, L, _, _, _, _ = ssnmf_instance(seed=13)
    segments = np.repeat([0, 1], [5, 6]) if segmented else None
    kw = dict(Y=Y, L=L, lam=0.7) if labelled else {}
    options = dict(radius=radius, segments=segments, forward_iter=15, random_state=0)
    start = nl.deep_nmf(X, ranks, max_iter=0, **options, **kw)
    n_sweeps = 3
    fast = nl.deep_nmf(X, ranks, max_iter=n_sweeps, tol=0, **options, **kw)
    assert fast.n_iter == n_sweeps
    A, S, B = start.A, start.S, start.B
    for _ in range(n_sweeps):
        A, S, B = ref.deep_nmf_sweep(X, A, S, B, **kw, radius=radius, segments=segments)
    assert_all_close(A, fast.A)
    assert_all_close(S, fast.S)
    if labelled:
        assert_close(B, fast.B)
    else:
        assert B is None


# ----------------------------------------------------------------------- Neural NMF


def neural_instance(ranks, M=9, seed=14):
    rng = np.random.default_rng(seed)
    X = rng.random((16, M))
    rows = [16, *ranks[:-1]]
    A = [rng.random((n, k)) + 0.05 for n, k in zip(rows, ranks, strict=True)]
    return X, A, rng


@pytest.mark.parametrize(("ranks", "M"), [([5, 3, 2], 9), ([4], 9), ([3, 1], 1)])
def test_neural_forward_equals_forward(ranks, M):
    X, A, _ = neural_instance(ranks, M)
    X[:, 0] = 0.0  # a zero sample: zero coefficients at every layer
    S = ref.neural_forward(A, X)
    assert_all_close(S, nl.forward(A, X))
    assert all(np.all(s[:, 0] == 0) for s in S)


@pytest.mark.parametrize(("ranks", "M"), [([5, 3, 2], 9), ([4], 9), ([3, 1], 1)])
def test_neural_backward_equals_loss_and_grad(ranks, M):
    X, A, _ = neural_instance(ranks, M)
    cost, grads, grad_B = ref.neural_backward(A, X, ref.neural_forward(A, X))
    cost_fast, grads_fast, grad_B_fast = nl.loss_and_grad(A, X)
    assert abs(cost - cost_fast) <= RTOL * cost_fast
    assert_all_close(grads, grads_fast)
    assert grad_B is None and grad_B_fast is None


@pytest.mark.parametrize("ranks", [[5, 3, 2], [4]])
def test_neural_backward_with_labels_equals_loss_and_grad(ranks):
    X, A, rng = neural_instance(ranks)
    Y = nl.one_hot(rng.integers(0, 3, X.shape[1]), 3)
    L = nl.label_mask(rng.random(X.shape[1]) < 0.6, 3)
    B = rng.random((3, ranks[-1]))
    S = ref.neural_forward(A, X)
    cost, grads, grad_B = ref.neural_backward(A, X, S, Y, L, B, lam=0.4)
    cost_fast, grads_fast, grad_B_fast = nl.loss_and_grad(A, X, Y=Y, L=L, B=B, lam=0.4)
    assert abs(cost - cost_fast) <= RTOL * cost_fast
    assert_all_close(grads, grads_fast)
    assert_close(grad_B, grad_B_fast)


# ----------------------------------------------------------------- the 40-line promise


def lines_of_code(function) -> int:
    """Lines of the body, without the docstring, blank lines and comment-only lines."""
    source = inspect.getsource(function)
    body = ast.parse(source).body[0].body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    lines = source.splitlines()[body[0].lineno - 1 : body[-1].end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("name", ref.__all__)
def test_every_teaching_version_is_at_most_40_lines_of_code(name):
    function = getattr(ref, name)
    assert inspect.getmodule(function) is ref
    assert function.__doc__ and "Notes" in function.__doc__  # says what it leaves out
    assert lines_of_code(function) <= 40


def test_the_api_reference_documents_every_teaching_version():
    api = (Path(__file__).resolve().parents[1] / "book" / "api.md").read_text()
    section = api.split("## Teaching versions")[1].split("\n## ")[0]
    documented = re.findall(r"^\.\. autofunction:: (\w+)$", section, flags=re.M)
    assert sorted(documented) == sorted(ref.__all__)
