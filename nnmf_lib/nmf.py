r"""Nonnegative matrix factorization: :math:`X \approx A S` with :math:`A, S \ge 0`.

Three algorithms minimize the (optionally masked) objective

.. math:: f(A, S) = \|W \odot (X - A S)\|_F^2 ,

- ``"mu"``: Lee-Seung multiplicative updates, with entries kept at or above
  ``eps = 1e-16`` so that no entry is locked at zero;
- ``"hals"``: hierarchical alternating least squares, an exact minimization over one
  row of ``S`` or one column of ``A`` at a time;
- ``"anls"``: alternating nonnegative least squares, an exact minimization over all of
  ``S``, then all of ``A``, by :func:`nnmf_lib.nnls` warm-started from the previous
  supports.

Shapes follow the book: ``X`` is N x M (one sample per column), ``A`` is N x k
(topics as columns), ``S`` is k x M. This is the transpose of scikit-learn's ``NMF``.

A scipy.sparse ``X`` stays sparse: it enters only through the products
:math:`A^\top X` and :math:`X S^\top` and its norm, so an iteration costs
O(nnz(X) k + (N + M) k^2) time and O(nnz(X) + (N + M) k) memory. A data mask then
costs O(nnz(P) k) more, P the smaller of its observed and missing sets (see
``nnmf_lib._sparse``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._run import (
    Deadline,
    Progress,
    check_bool,
    check_max_time,
    labelled,
    scale_exponent,
    scaled,
    unconverged_message,
)
from ._sparse import SparseMask, axis_max, is_sparse, residual_norm2, sq_norm
from ._validation import (
    ConvergenceWarning,
    as_data,
    as_masked_data,
    as_matrix,
    check_choice,
    check_float,
    check_int,
    check_random_state,
    check_rank,
    check_shape,
    warn,
)
from .nnls import _exponent, _nnls, _Tally

__all__ = ["NMFResult", "initialize", "nmf"]

EPS = 1e-16  # floor of the entries under multiplicative updates and HALS
TINY = np.finfo(float).tiny
METHODS = ("mu", "hals", "anls")
INITS = ("nndsvda", "nndsvd", "nndsvdar", "random")


@dataclass
class NMFResult:
    """The outcome of :func:`nmf`.

    Attributes
    ----------
    A : ndarray, shape (N, k)
        Topics, one per column, scaled to unit Euclidean norm (zero columns stay 0).
    S : ndarray, shape (k, M)
        Coefficients; ``A @ S`` approximates ``X``.
    n_iter : int
        Number of iterations performed.
    objective : ndarray, shape (n_iter + 1,)
        :math:`\\|W \\odot (X - AS)\\|_F^2` at the start and after every iteration.
    elapsed : ndarray, shape (n_iter + 1,)
        Seconds since the start of the iterations, when each objective was recorded.
    converged : bool
        Whether the stopping rule was met before ``max_iter`` (never with a relative
        error above 1).
    method : str
        The algorithm used.
    relative_error : float
        :math:`\\|W \\odot (X - AS)\\| / \\|W \\odot X\\|` at the end.
    stop_reason : str
        Why the iterations stopped: ``"tol"`` (converged), ``"max_iter"``,
        ``"max_time"``, or ``"diverged"`` (the stopping rule held at a relative error
        above 1).
    """

    A: np.ndarray
    S: np.ndarray
    n_iter: int
    objective: np.ndarray = field(repr=False)
    elapsed: np.ndarray = field(repr=False)
    converged: bool
    method: str
    relative_error: float
    stop_reason: str = "tol"


def _svd(X: np.ndarray, k: int, rng: np.random.Generator):
    """Leading k singular triplets (randomized for large matrices, exact for small)."""
    if min(X.shape) <= 200 and is_sparse(X):
        return _gram_svd(X, k)
    if min(X.shape) <= 200:
        U, s, Vt = np.linalg.svd(X, full_matrices=False)
        return U[:, :k], s[:k], Vt[:k]
    from sklearn.utils.extmath import randomized_svd

    seed = int(rng.integers(2**31 - 1))
    return randomized_svd(X, k, n_iter=7, random_state=seed)


def _gram_svd(X, k: int):
    """Leading k singular triplets of a sparse X with min(N, M) <= 200, from the
    eigendecomposition of its small Gram matrix (X X^T or X^T X): no N x M array."""
    wide = X.shape[0] < X.shape[1]
    gram = (X @ X.T) if wide else (X.T @ X)  # a small sparse product
    lam, V = np.linalg.eigh(gram.toarray())
    order = np.argsort(lam)[::-1][:k]
    sigma = np.sqrt(np.maximum(lam[order], 0.0))
    V = V[:, order]
    other = ((X.T @ V) if wide else (X @ V)) / np.where(sigma > 0, sigma, np.inf)
    return (V, sigma, other.T) if wide else (other, sigma, V.T)


def initialize(X, k: int, init: str = "nndsvda", *, random_state=None):
    r"""Initial factors ``(A, S)`` for NMF of ``X`` with rank ``k``.

    ``"nndsvd"`` (Boutsidis & Gallopoulos, 2008) builds each rank-one term from the
    positive or the negative part of a singular pair of ``X``, whichever is larger, and
    leaves exact zeros; ``"nndsvda"`` fills those zeros with the mean of ``X``, and
    ``"nndsvdar"`` with small random values (mean/100 times :math:`|N(0, 1)|`).
    ``"random"`` draws :math:`|N(0,1)|` entries scaled by :math:`\sqrt{\bar X / k}` (as
    scikit-learn does), so that the entries of :math:`A S` have mean
    :math:`(2/\pi)\bar X`, the scale of the data.

    The NNDSVD variants reproduce scikit-learn's for data whose largest entry is at
    least 1 (scikit-learn zeroes factor entries below 1e-6; here that threshold
    shrinks with smaller data). Only ``"nndsvd"`` and ``"random"`` are exactly
    scale-equivariant: ``"nndsvda"`` fills zeros with the mean of ``X``, which for
    data of extreme scale (say above 1e6) is far from the scale of the factors, the
    square root of the data's. For such data, prefer ``init="random"`` or rescale
    ``X`` (the fit of ``X / c`` times ``c`` is a fit of ``X``).

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data. A sparse matrix stays sparse (its singular vectors come from
        products with it).
    k : int
        Rank, ``1 <= k <= min(N, M)``.
    init : {"nndsvda", "nndsvd", "nndsvdar", "random"}
    random_state : None, int or numpy.random.Generator
        Used by ``"random"``, ``"nndsvdar"`` and the randomized SVD of large matrices.

    Returns
    -------
    A : ndarray, shape (N, k)
    S : ndarray, shape (k, M)
    """
    X = as_data(X, "X")
    k = check_rank(k, X)
    init = check_choice(init, "init", INITS)
    rng = check_random_state(random_state)
    mean = float(X.mean())
    if init == "random":
        scale = np.sqrt(mean / k)
        A = scale * np.abs(rng.standard_normal((X.shape[0], k)))
        S = scale * np.abs(rng.standard_normal((k, X.shape[1])))
        return A, S
    U, sigma, Vt = _svd(X, k, rng)
    A = np.zeros((X.shape[0], k))
    S = np.zeros((k, X.shape[1]))
    A[:, 0] = np.sqrt(sigma[0]) * np.abs(U[:, 0])
    S[0] = np.sqrt(sigma[0]) * np.abs(Vt[0])
    for j in range(1, k):  # a loop over the k components, not over the data
        x, y = U[:, j], Vt[j]
        # Keep the positive or the negative parts of the pair, whichever is larger.
        pos = (np.maximum(x, 0), np.maximum(y, 0))
        neg = (np.maximum(-x, 0), np.maximum(-y, 0))
        m_pos = np.linalg.norm(pos[0]) * np.linalg.norm(pos[1])
        m_neg = np.linalg.norm(neg[0]) * np.linalg.norm(neg[1])
        (u, v), m = (pos, m_pos) if m_pos > m_neg else (neg, m_neg)
        if m == 0:  # a zero singular pair: leave the component at zero
            continue
        scale = np.sqrt(sigma[j] * m)
        A[:, j] = scale * u / np.linalg.norm(u)
        S[j] = scale * v / np.linalg.norm(v)
    # scikit-learn zeroes entries below 1e-6; for data below 1 the threshold shrinks
    # with the data (the factors scale as its square root), or tiny data would be
    # zeroed entirely and start from a constant, rank-one point.
    threshold = 1e-6 * min(1.0, np.sqrt(float(X.max())))
    A[A < threshold] = 0.0
    S[S < threshold] = 0.0
    if init == "nndsvda":
        A[A == 0] = mean
        S[S == 0] = mean
    elif init == "nndsvdar":
        A[A == 0] = mean / 100 * np.abs(rng.standard_normal(int((A == 0).sum())))
        S[S == 0] = mean / 100 * np.abs(rng.standard_normal(int((S == 0).sum())))
    return A, S


def _objective(X, A, S, W, norm_x2, cross=None):
    """The objective ||W * (X - A S)||_F^2.

    Without a mask it uses ||X||^2 - 2 <A^T X, S> + <A^T A, S S^T>, which costs only
    k x k products once the cross term <A^T X, S> (``cross``) is known from the update.
    When the fit is so close that this difference would lose digits (an error below 1%
    of the data), the residual is computed directly instead.
    """
    if is_sparse(X):  # never the N x M residual
        return residual_norm2(X, A, S, W, norm_x2, cross)
    if W is None:
        if cross is None:
            cross = float(np.vdot(A.T @ X, S))
        f = norm_x2 - 2.0 * cross + float(np.vdot(A.T @ A, S @ S.T))
        if f > 1e-4 * norm_x2:
            return f
    R = X - A @ S
    if W is not None:
        R *= W
    return float(np.vdot(R, R))


def _masked(W, A, S):
    """``W * (A @ S)``: an N x M array, or for a :class:`SparseMask` an operator that
    multiplies thin matrices without forming it."""
    return W.product(A, S) if isinstance(W, SparseMask) else W * (A @ S)


def stopped(history: list[float], tol: float, window: int = 10) -> bool:
    """The stopping rule: the objective fell by less than ``tol`` (relative) over the
    last ``window`` iterations, or reached zero.

    A window rather than a single step makes the rule robust to the rounding-level
    jitter of multiplicative updates, and a relative decrease makes it scale-free.
    """
    if history[-1] <= np.finfo(float).tiny:
        return True
    if len(history) <= window:
        return False
    old, new = history[-1 - window], history[-1]
    return old - new <= tol * old


def _mu_update_A(WX, A, S, W):
    """Multiplicative update of A for ||W * (X - A S)||^2, given ``WX = W * X``."""
    if W is None:
        denominator = A @ (S @ S.T)  # k x k first: O(Nk^2) instead of O(NMk)
    else:
        denominator = _masked(W, A, S) @ S.T
    return np.maximum(EPS, A * (WX @ S.T) / np.maximum(denominator, TINY))


def _mu_terms_S(WX, A, S, W):
    """Numerator and denominator of the multiplicative update of S."""
    if W is None:
        return A.T @ WX, (A.T @ A) @ S
    return A.T @ WX, A.T @ _masked(W, A, S)


def _mu_step(X, A, S, W, norm_x2):
    """One pass of multiplicative updates, A then S (Lee & Seung 2001, masked)."""
    WX = X if W is None or is_sparse(X) else W * X  # sparse X arrives as W * X
    A = _mu_update_A(WX, A, S, W)
    numerator, denominator = _mu_terms_S(WX, A, S, W)
    S = np.maximum(EPS, S * numerator / np.maximum(denominator, TINY))
    cross = float(np.vdot(numerator, S)) if W is None or is_sparse(X) else None
    return A, S, _objective(X, A, S, W, norm_x2, cross)


def _hals_rows(S, P, Q):
    """Exact minimization over each row of S in turn, for the Gram form P = A^T X,
    Q = A^T A (Cichocki & Phan 2009)."""
    for j in range(S.shape[0]):  # loop over the k components
        if Q[j, j] > 0:
            S[j] = np.maximum(EPS, S[j] + (P[j] - Q[j] @ S) / Q[j, j])
    return S


def _hals_rows_masked(S, A, R, W):
    """Masked HALS over the rows of S; R = W * (X - A S) is updated in place."""
    for j in range(S.shape[0]):  # loop over the k components
        a2 = (A[:, j] ** 2) @ W  # sum over observed entries of a_nj^2, per column
        new = np.where(
            a2 > 0, (A[:, j] @ R + S[j] * a2) / np.where(a2 > 0, a2, 1), S[j]
        )
        new = np.maximum(EPS, new)
        R -= W * np.outer(A[:, j], new - S[j])
        S[j] = new
    return S


def _hals_step(X, A, S, W, norm_x2):
    if isinstance(W, SparseMask):  # sparse data: the residual lives on W's pattern
        return _hals_step_sparse_mask(X, A, S, W, norm_x2)
    if W is None:
        S = _hals_rows(S, A.T @ X, A.T @ A)
        XSt = X @ S.T
        A = _hals_rows(A.T, XSt.T, S @ S.T).T
        return A, S, _objective(X, A, S, W, norm_x2, float(np.vdot(A, XSt)))
    R = W * (X - A @ S)
    S = _hals_rows_masked(S, A, R, W)
    A = _hals_rows_masked(A.T, S.T, R.T, W.T).T
    return A, S, _objective(X, A, S, W, norm_x2)


def _hals_step_sparse_mask(X, A, S, W, norm_x2):
    """HALS with a :class:`SparseMask` for sparse ``X`` (given as ``W * X``).

    The residual ``r = X - A S`` is kept only on the mask's pattern P. For a mask
    stored by its observed entries that is all the objective sees; for one stored by
    its missing entries, the sums over the observed entries are the sums over all
    entries (Gram form, as without a mask) minus those over P.
    """
    r = W.values_at(X) - W.sample(A, S)
    full = None if W.observed else (A.T @ X, A.T @ A)
    S = _hals_rows_sparse(S, A, r, W.cols, W.rows, full)
    XSt = X @ S.T
    full = None if W.observed else (XSt.T, S @ S.T)
    A = _hals_rows_sparse(A.T, S.T, r, W.rows, W.cols, full).T
    if W.observed:
        return A, S, float(np.dot(r, r))
    f = norm_x2 - 2.0 * float(np.vdot(A, XSt)) + float(np.vdot(A.T @ A, S @ S.T))
    return A, S, max(f - float(np.dot(r, r)), 0.0)


def _hals_rows_sparse(U, V, r, iu, iv, full):
    """Masked HALS over the rows of U (k x m) for the model ``V U`` on a sparse
    pattern: entry e of the pattern is at column ``iu[e]`` of U and row ``iv[e]`` of V,
    ``r`` is the residual there (updated in place). ``full`` is ``(V^T X, V^T V)`` for
    a mask stored by its missing entries (sums over all entries, minus the pattern's),
    None for one stored by its observed entries."""
    m = U.shape[1]
    for j in range(U.shape[0]):  # loop over the k components
        v = V[:, j][iv]
        work = v * r  # one temporary of the pattern's size, reused
        g = np.bincount(iu, weights=work, minlength=m)
        a2 = np.bincount(iu, weights=np.multiply(v, v, out=work), minlength=m)
        if full is not None:
            VtX, G = full
            a2, g = G[j, j] - a2, VtX[j] - G[j] @ U - g
        new = np.where(a2 > 0, U[j] + g / np.where(a2 > 0, a2, 1), U[j])
        new = np.maximum(EPS, new)
        r -= np.multiply(v, (new - U[j])[iu], out=work)
        U[j] = new
    return U


def _anls_step(X, A, S, norm_x2, exps, tally):
    """Exact NNLS for S, then for A, each warm-started from its previous support.

    ``exps`` are the column and row exponents of X (fixed, computed once); the second
    solve's ``S X^T`` gives the cross term of the objective without another product.
    """
    S, solved = _nnls(A, X, support=S > 0, x_exp=exps[0])
    tally.add(solved.info, X.shape[1])
    At, solved = _nnls(S.T, X.T, support=A.T > 0, x_exp=exps[1])
    tally.add(solved.info, X.shape[0])
    cross = float(np.vdot(At, solved.AtX()))  # <A, X S^T>
    return At.T, S, _objective(X, At.T, S, None, norm_x2, cross)


def _normalize(A, S):
    """Scale the columns of A to unit norm and push the scales into the rows of S."""
    norms = np.linalg.norm(A, axis=0)
    d = np.where(norms > 0, norms, 1.0)
    return A / d, S * d[:, None]


def nmf(
    X,
    k: int,
    *,
    method: str = "hals",
    W=None,
    init="nndsvda",
    max_iter: int = 1000,
    tol: float = 1e-5,
    random_state=None,
    max_time: float | None = None,
    verbose: bool = False,
) -> NMFResult:
    r"""Nonnegative matrix factorization: minimize :math:`\|W \odot (X - AS)\|_F^2`.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data, one sample per column. Entries where ``W`` is 0 are ignored
        (they may hold any value). A scipy.sparse matrix (CSR, CSC, COO) stays sparse:
        each iteration costs O(nnz(X) k + (N + M) k^2). A numpy masked array means
        ``W = ~X.mask``.
    k : int
        Number of topics, ``1 <= k <= min(N, M)``.
    method : {"hals", "mu", "anls"}, default "hals"
        ``"mu"``: multiplicative updates (A, then S), entries kept >= 1e-16;
        ``"hals"``: exact updates of one row of S / column of A at a time;
        ``"anls"``: exact alternating nonnegative least squares (no mask support).
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask: 1 where ``X`` is observed. Supported by ``"mu"`` and ``"hals"``.
        With sparse ``X`` it may be dense (kept as the smaller of its observed and
        missing sets) or sparse (its stored ones are the observed entries), and adds
        O(nnz k) per iteration, nnz the size of that set.
    init : {"nndsvda", "nndsvd", "nndsvdar", "random"} or tuple (A0, S0)
        Initialization (see :func:`initialize`), or explicit starting factors.
    max_iter : int, default 1000
        Maximum number of iterations (one update of A and one of S each).
    tol : float, default 1e-5
        Stop when the objective decreased by less than ``tol`` (relative) over the last
        10 iterations.
    random_state : None, int or numpy.random.Generator
        Seed for the random initializations; the same seed gives the same result
        for a fixed BLAS configuration (the number of threads changes the rounding).
    max_time : float, optional
        Time budget in seconds: stop after the first iteration that ends past it
        (``stop_reason="max_time"``). Default: no budget.
    verbose : bool, default False
        Show a progress bar (``tqdm.auto``) with the current objective.

    Returns
    -------
    NMFResult

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` or ``max_time`` is reached before the stopping rule holds,
        or when the rule holds at a relative error above 1 (then ``converged`` is
        False).

    Notes
    -----
    Data whose largest entry is outside :math:`[2^{-40}, 2^{40}]` are divided by a
    power of two (exactly) before the iterations, and the factors scaled back, so
    data from 1e-250 to 1e250 are fitted alike. ``objective`` is reported in the
    units of :math:`X^2` and over- or underflows beyond about 1e154 or 1e-154;
    ``relative_error`` does not.
    """
    X, W = as_masked_data(X, W)
    k = check_rank(k, X)
    method = check_choice(method, "method", METHODS)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol")
    max_time = check_max_time(max_time)
    verbose = check_bool(verbose, "verbose")
    rng = check_random_state(random_state)
    if W is not None and method == "anls":
        raise ValueError(
            "method='anls' does not support a data mask W (nor a masked array X: "
            "its least-squares subproblems would differ column by column); use "
            "method='hals' or 'mu'."
        )
    e = scale_exponent(X)  # work on X / 2^e, of moderate size (exact scaling)
    X = scaled(X, e)
    A, S = _start(X, k, init, rng, method, e)
    A, S, history, elapsed, tally, reason = _iterate(
        X, W, A, S, method, max_iter, tol, Deadline(max_time), verbose
    )
    norm_x = np.sqrt(sq_norm(X if W is None or is_sparse(X) else W * X))
    relative = float(np.sqrt(history[-1])) / max(norm_x, TINY)
    reason = _verdict(
        f"nmf(method={method!r})", reason, relative, max_iter, max_time, tol
    )
    if method == "anls":
        for message, category in tally.warnings("nmf(method='anls'), its NNLS steps"):
            warn(message, category)
    A, S = _normalize(A, S)
    with np.errstate(over="ignore", under="ignore"):  # documented: X^2 may overflow
        objective = np.ldexp(np.array(history), 2 * e)
    return NMFResult(
        A=A,
        S=np.ldexp(S, e),
        n_iter=len(history) - 1,
        objective=objective,
        elapsed=np.array(elapsed),
        converged=reason == "tol",
        method=method,
        relative_error=relative,
        stop_reason=reason,
    )


def _iterate(X, W, A, S, method, max_iter, tol, deadline, verbose):
    """The iterations of :func:`nmf` on validated (and scaled) data.

    Returns the factors, the objective and time histories, the NNLS tally (ANLS) and
    why the iterations stopped ("tol", "max_iter" or "max_time").
    """
    WX = X if W is None or is_sparse(X) else W * X  # sparse X arrives as W * X
    norm_x2 = sq_norm(WX)
    history = [_objective(X, A, S, W, norm_x2)]
    elapsed, tally, reason = [0.0], _Tally(), "max_iter"
    if method == "anls":  # what stays fixed over the iterations
        exps = (_exponent(axis_max(X, 0)), _exponent(axis_max(X, 1)))
    progress = Progress(verbose, max_iter, f"nmf({method})")
    for _ in range(max_iter):
        if method == "mu":
            A, S, f = _mu_step(X, A, S, W, norm_x2)
        elif method == "hals":
            A, S, f = _hals_step(X, A, S, W, norm_x2)
        else:
            A, S, f = _anls_step(X, A, S, norm_x2, exps, tally)
        history.append(f)
        elapsed.append(time.perf_counter() - deadline.start)
        progress.update(f)
        if stopped(history, tol):
            reason = "tol"
            break
        if deadline.expired():
            reason = "max_time"
            break
    progress.close()
    return A, S, history, elapsed, tally, reason


def _verdict(what, reason, relative_error, max_iter, max_time, tol) -> str:
    """Warn when a run stopped on a budget, or "converged" to a fit worse than zero
    (a relative error above 1, which S = 0 beats); return the final stop reason."""
    if reason == "tol" and relative_error > 1:
        warn(
            f"{labelled(what)} met its stopping rule with a relative error of "
            f"{relative_error:.3g}, worse than the zero matrix: it is reported as "
            "not converged. Try another init or rescale X.",
            ConvergenceWarning,
        )
        return "diverged"
    if reason in ("max_iter", "max_time"):
        budget = max_iter if reason == "max_iter" else max_time
        warn(unconverged_message(what, reason, budget, tol), ConvergenceWarning)
    return reason


def _start(X, k, init, rng, method, e=0):
    """Starting factors from an init name or an explicit (A0, S0) pair (copied, and
    each divided by 2^(e/2) when the data were divided by 2^e)."""
    if isinstance(init, tuple):
        if len(init) != 2:
            raise ValueError("init must be a method name or a tuple (A0, S0).")
        A = as_matrix(init[0], "A0", nonnegative=True).copy()
        S = as_matrix(init[1], "S0", nonnegative=True).copy()
        check_shape(A, (X.shape[0], k), "A0", "rows of X x k")
        check_shape(S, (k, X.shape[1]), "S0", "k x columns of X")
        A, S = np.ldexp(A, -(e // 2)), np.ldexp(S, -(e // 2))
    else:
        if init == "nndsvd" and method == "mu":
            warn(
                "init='nndsvd' leaves exact zeros, which multiplicative updates "
                "leave only slowly (zero locking); prefer 'nndsvda' or 'nndsvdar'.",
                UserWarning,
            )
        A, S = initialize(X, k, init, random_state=rng)
    if method == "mu":  # multiplicative updates need strictly positive entries
        A, S = np.maximum(A, EPS), np.maximum(S, EPS)
    return A, S
