r"""Nonnegative least squares for many right-hand sides, and its derivative.

The operator at the heart of Neural NMF is

.. math:: q(A, X) = \operatorname*{argmin}_{S \ge 0} \|X - A S\|_F ,

solved column by column. :func:`~nnmf_lib.nnls` solves all columns at once by block
principal pivoting (Kim & Park, 2011) with the columns grouped by their passive set, so
that the work is a few batched linear solves instead of a Python loop over columns.
:func:`~nnmf_lib.nnls_vjp` differentiates :math:`q` (the vector-Jacobian product used
by backpropagation) and :func:`~nnmf_lib.kkt_residual` measures how optimal a candidate
``S`` is.

Shapes follow the book: ``A`` is N x k, ``X`` is N x M (columns are samples),
``S`` is k x M.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ._validation import (
    RankDeficiencyWarning,
    as_mask,
    as_masked_data,
    as_matrix,
    check_int,
    check_same_rows,
    check_shape,
    warn,
)

__all__ = ["NNLSInfo", "kkt_residual", "nnls", "nnls_vjp"]

# A Gram block whose smallest Cholesky pivot is at most _RCOND times its largest
# diagonal entry is treated as singular and inverted by a pseudoinverse.
_RCOND = 1e-13
# Infeasibility threshold of the pivoting, relative to the scale of each column.
_RTOL = 1e-12
# Up to this many topics, all supports are solved in one padded batch (fewer calls).
_PAD_K = 16
# Upper bound on the number of k x k matrices gathered at once (memory guard).
_CHUNK_ENTRIES = 1 << 22


@dataclass
class NNLSInfo:
    """What :func:`nnls` did.

    Attributes
    ----------
    n_iter : int
        Number of pivoting sweeps (0 when the starting support was already optimal).
    kkt_residual : float
        :func:`kkt_residual` of the returned solution.
    n_fallback : int
        Columns that did not converge within ``max_iter`` sweeps and were finished by
        the Lawson-Hanson active-set method (``scipy.optimize.nnls``).
    rank_deficient : bool
        Whether some passive-set Gram block was singular (the solution is then not
        unique; the minimum-norm solution on that support was used).
    """

    n_iter: int
    kkt_residual: float
    n_fallback: int
    rank_deficient: bool


def _chunks(n: int, entries_per_item: int):
    """Slices that split ``range(n)`` into chunks that gather a bounded memory."""
    step = max(1, _CHUNK_ENTRIES // max(entries_per_item, 1))
    return (slice(i, i + step) for i in range(0, n, step))


def _solve_blocks(
    blocks: np.ndarray, which: np.ndarray, rhs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``blocks[which[j]] z_j = rhs[j]`` for every j (``blocks`` symmetric PSD).

    ``blocks`` is G x s x s, ``which`` (n,) maps each right-hand side to its block, and
    ``rhs`` is n x s. A block is singular when its smallest Cholesky pivot is at most
    ``_RCOND`` times its largest diagonal entry; its right-hand sides get the
    minimum-norm least-squares solution. Returns ``z`` (n x s) and the singular flag of
    each block.
    """
    n_blocks, s, _ = blocks.shape
    diag_max = np.diagonal(blocks, axis1=1, axis2=2).max(axis=1)
    try:
        pivots = np.diagonal(np.linalg.cholesky(blocks), axis1=1, axis2=2) ** 2
        singular = pivots.min(axis=1) <= _RCOND * diag_max
    except np.linalg.LinAlgError:  # some block is not positive definite
        singular = np.linalg.eigvalsh(blocks)[:, 0] <= _RCOND * diag_max
    inv = np.zeros_like(blocks)
    if singular.any():  # pseudoinverse through the eigendecomposition
        w, V = np.linalg.eigh(blocks[singular])
        w_inv = np.divide(1.0, w, out=np.zeros_like(w), where=w > _RCOND * w[:, -1:])
        inv[singular] = (V * w_inv[:, None, :]) @ np.swapaxes(V, 1, 2)
    z = np.empty_like(rhs)
    direct = ~singular[which]
    # Many right-hand sides per block: invert each block once and reuse it.
    # About one per block: an LU solve per right-hand side is cheaper than an inverse.
    if rhs.shape[0] >= 4 * n_blocks:
        inv[~singular] = np.linalg.inv(blocks[~singular])
        direct[:] = False
    for sl in _chunks(rhs.shape[0], s * s):
        w, r, d = which[sl], rhs[sl, :, None], direct[sl]
        z_sl = np.empty(r.shape)
        z_sl[~d] = inv[w[~d]] @ r[~d]
        z_sl[d] = np.linalg.solve(blocks[w[d]], r[d])
        z[sl] = z_sl[:, :, 0]
    return z, singular


def _group_columns(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group the columns of a boolean k x m matrix by identical pattern.

    Returns the distinct patterns (G x k) and, for each column, the index of its group.
    Each column is packed into 64-bit words and the words are sorted, which is much
    faster than ``np.unique(F.T, axis=0)``.
    """
    m = F.shape[1]
    packed = np.packbits(F, axis=0)
    padded = np.zeros((m, -(-packed.shape[0] // 8) * 8), dtype=np.uint8)
    padded[:, : packed.shape[0]] = packed.T
    words = padded.view(np.uint64).T  # n_words x m
    order = np.lexsort(words[::-1])
    ordered = words[:, order]
    first = np.ones(m, dtype=bool)
    first[1:] = np.any(ordered[:, 1:] != ordered[:, :-1], axis=0)
    group = np.empty(m, dtype=np.intp)
    group[order] = np.cumsum(first) - 1
    return F[:, order[first]].T, group


def _solve_on_supports(
    CtC: np.ndarray, F: np.ndarray, R: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``CtC[T, T] z_T = R[T, j]``, ``z`` zero off ``T = F[:, j]``, for every j.

    ``CtC`` is one k x k Gram matrix shared by all columns, or an m x k x k stack with
    one Gram matrix per column (the masked problem). The columns are grouped by
    identical support, and the supports by size. Each size class is one batched solve of
    |T| x |T| systems (one factorization per distinct support when the Gram matrix is
    shared), so the Python loop runs over support sizes, never over columns.
    Returns ``Z`` (k x m) and a boolean vector marking columns whose block was singular.
    """
    k, m = F.shape
    Z = np.zeros((k, m))
    singular_col = np.zeros(m, dtype=bool)
    if m == 0:
        return Z, singular_col
    patterns, group = _group_columns(F)
    if k <= _PAD_K:  # small k: a single batch, each block padded with the identity
        return _solve_padded(CtC, F, R, patterns, group)
    sizes = patterns.sum(axis=1)
    local = np.empty(len(patterns), dtype=np.intp)  # index of a group in its class
    for s in np.unique(sizes[sizes > 0]):
        in_class = np.flatnonzero(sizes == s)
        local[in_class] = np.arange(in_class.size)
        T = np.nonzero(patterns[in_class])[1].reshape(-1, s)  # support of each group
        cols = np.flatnonzero(sizes[group] == s)
        which = local[group[cols]]
        rows = T[which]  # n x s: the support of each column
        if CtC.ndim == 2:  # shared Gram matrix: one block per distinct support
            blocks = CtC[T[:, :, None], T[:, None, :]]
        else:  # one Gram matrix per column: one block per column
            blocks = CtC[cols[:, None, None], rows[:, :, None], rows[:, None, :]]
            which = np.arange(cols.size)
        z, singular = _solve_blocks(blocks, which, R[rows, cols[:, None]])
        Z[rows, cols[:, None]] = z
        singular_col[cols] = singular[which]
    return Z, singular_col


def _solve_padded(CtC, F, R, patterns, group):
    """One batched solve for all supports: the block of a support T is the Gram matrix
    on T and a scaled identity off T (where z = 0). Cheaper than size classes when k is
    small, because the cost is in the number of calls, not in the arithmetic."""
    k = F.shape[0]
    if CtC.ndim == 2:  # one block per distinct support
        on = patterns[:, :, None] & patterns[:, None, :]
        blocks = np.where(on, CtC, 0.0)
        pattern_of_block, which = patterns, group
    else:  # one block per column
        blocks = np.where(F.T[:, :, None] & F.T[:, None, :], CtC, 0.0)
        pattern_of_block, which = F.T, np.arange(F.shape[1])
    scale = max(float(np.abs(CtC).max()), np.finfo(float).tiny)
    idx = np.arange(k)
    blocks[:, idx, idx] += np.where(pattern_of_block, 0.0, scale)
    z, singular = _solve_blocks(blocks, which, np.where(F, R, 0.0).T)
    return np.where(F, z.T, 0.0), singular[which]


def _gram_times(CtC: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``CtC @ x`` column by column, for a shared or a per-column Gram matrix."""
    return CtC @ x if CtC.ndim == 2 else np.einsum("mij,jm->im", CtC, x)


def _grams(A: np.ndarray, X: np.ndarray, W) -> tuple[np.ndarray, np.ndarray]:
    """``A^T A`` and ``A^T X``, or with a mask the per-column ``A^T diag(w_m) A`` and
    ``A^T (W * X)``."""
    if W is None:
        return A.T @ A, A.T @ X
    return np.einsum("nm,ni,nj->mij", W, A, A, optimize=True), A.T @ (W * X)


def _solve_passive(CtC, CtB, F):
    """Least squares on the passive sets: ``x`` (zero off F), ``y`` (zero on F)."""
    x, singular = _solve_on_supports(CtC, F, CtB)
    y = _gram_times(CtC, x) - CtB
    y[F] = 0.0
    return x, y, singular


def nnls(A, X, *, W=None, support=None, max_iter: int = 100, return_info: bool = False):
    r"""Solve :math:`\min_{S \ge 0} \|X - A S\|_F` for all columns of ``X`` at once.

    Block principal pivoting (Kim & Park, 2011, Algorithm 2) with the columns grouped by
    passive set. Each sweep exchanges all infeasible variables of a column at once
    (falling back to Murty's single-variable rule when that stops reducing their
    number), and each distinct passive set costs one small k x k factorization. The
    result is exact: it satisfies the KKT conditions

    .. math:: S \ge 0, \quad G = A^\top (A S - X) \ge 0, \quad S \odot G = 0

    to rounding error. Columns whose passive set still changes after ``max_iter`` sweeps
    are finished by the Lawson-Hanson active-set method, so the answer is always exact.

    Parameters
    ----------
    A : array_like, shape (N, k)
        Nonnegative dictionary (topics as columns).
    X : array_like, shape (N, M)
        Nonnegative data, one sample per column. Where ``W`` is 0 the entries are
        ignored and may hold anything (NaN included).
    W : array_like of {0, 1}, shape (N, M), optional
        Data mask: solve :math:`\min_{S\ge0} \|W \odot (X - AS)\|_F`, so that each
        column is fitted on its observed entries only. Each column then has its own
        Gram matrix, which costs O(N M k^2) time and O(M k^2) memory.
    support : array_like of bool, shape (k, M), optional
        Warm start: the passive set to begin from, for example ``S_prev > 0`` from a
        previous, nearby problem. Default: start from the empty set.
    max_iter : int, default 100
        Maximum number of pivoting sweeps before the active-set fallback.
    return_info : bool, default False
        Also return an :class:`NNLSInfo`.

    Returns
    -------
    S : ndarray, shape (k, M)
        The minimizer, with exact zeros off its support. When ``A`` is rank-deficient
        (on the observed rows of a column) the minimizer is not unique and one of them
        is returned (the fit ``A S`` is unique).
    info : NNLSInfo
        Only when ``return_info`` is true.

    Raises
    ------
    ValueError
        If ``A`` or ``X`` is not 2-D, not finite or has a negative entry, if their row
        counts differ, or if ``W`` or ``support`` has the wrong shape or non-binary
        values.
    """
    A = as_matrix(A, "A", nonnegative=True)
    X, W = as_masked_data(X, W)
    check_same_rows(A, X)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if support is not None:
        support = as_mask(support, (A.shape[1], X.shape[1]), "support")
    S, info = _bpp(A, X, W, support, max_iter)
    return (S, info) if return_info else S


def _bpp(A, X, W, support, max_iter):
    """Block principal pivoting on validated input; returns ``(S, NNLSInfo)``.

    The columns of ``A`` are scaled to unit norm first, and the solution scaled back:
    ``q(A D, X) = D^{-1} q(A, X)`` for a positive diagonal ``D``, and the tolerances and
    the singularity test are then relative to comparable columns (a topic with tiny
    entries next to one with large entries is not mistaken for a zero topic).
    """
    d = np.linalg.norm(A, axis=0)
    d[d == 0] = 1.0  # a zero topic stays zero; its coefficient will be 0
    S, CtC, CtB, stats = _bpp_unit(A / d, X, W, support, max_iter)
    S = S / d[:, None]
    # The residual of the returned S for the caller's A: A^T A = D C D, A^T X = D B.
    residual = _kkt(CtC * d[:, None] * d[None, :], CtB * d[:, None], S)
    return S, NNLSInfo(kkt_residual=residual, **stats)


def _bpp_unit(A, X, W, support, max_iter):
    """The pivoting itself; returns ``S``, the Gram matrices and the counters."""
    k, M = A.shape[1], X.shape[1]
    F = np.zeros((k, M), dtype=bool) if support is None else support.copy()
    CtC, CtB = _grams(A, X, W)
    # Scale of each column's dual variable y and primal variable x, for the tolerances.
    tol_y = _RTOL * np.maximum(np.abs(CtB).max(axis=0), np.finfo(float).tiny)
    tol_x = tol_y / max(float(np.max(np.abs(CtC))), np.finfo(float).tiny)

    if support is None:  # empty passive set: S = 0 and the dual is -A^T X
        S, Y, rank_deficient = np.zeros((k, M)), -CtB, False
    else:
        S, Y, singular = _solve_passive(CtC, CtB, F)
        rank_deficient = bool(singular.any())
    alpha = np.full(M, 3)  # full exchanges still allowed without progress
    beta = np.full(M, k + 1)  # smallest number of infeasibilities seen
    n_iter = 0
    todo = np.zeros(M, dtype=bool)
    for _ in range(max_iter + 1):
        V = (F & (S < -tol_x)) | (~F & (Y < -tol_y))  # infeasible variables
        n_infeasible = V.sum(axis=0)
        todo = n_infeasible > 0
        if not todo.any() or n_iter == max_iter:
            break
        n_iter += 1
        improved = todo & (n_infeasible < beta)
        beta[improved] = n_infeasible[improved]
        alpha[improved] = 3
        patient = todo & ~improved & (alpha >= 1)
        alpha[patient] -= 1
        full = improved | patient
        F[:, full] ^= V[:, full]
        backup = np.flatnonzero(todo & ~full)
        if backup.size:  # Murty's rule: exchange only the largest infeasible index
            last = k - 1 - np.argmax(V[::-1, backup], axis=0)
            F[last, backup] ^= True
        C = CtC if CtC.ndim == 2 else CtC[todo]
        S[:, todo], Y[:, todo], singular = _solve_passive(C, CtB[:, todo], F[:, todo])
        rank_deficient |= bool(singular.any())

    S = np.where(F, np.maximum(S, 0.0), 0.0)
    fallback = np.flatnonzero(todo)
    for j in fallback:  # rare: only columns the pivoting could not finish
        rows = slice(None) if W is None else W[:, j] > 0
        S[:, j] = scipy.optimize.nnls(A[rows], X[rows, j], maxiter=50 * (k + 1))[0]
    stats = dict(
        n_iter=n_iter, n_fallback=int(fallback.size), rank_deficient=rank_deficient
    )
    return S, CtC, CtB, stats


def _kkt(CtC: np.ndarray, CtB: np.ndarray, S: np.ndarray) -> float:
    CS = _gram_times(CtC, S)
    G = CS - CtB
    scale = max(float(np.abs(CtB).max()), float(np.abs(CS).max()))
    if scale == 0.0:
        return 0.0
    # D S has the units of G, so min(D S, G) compares like with like.
    D = np.diag(CtC)[:, None] if CtC.ndim == 2 else np.diagonal(CtC, 0, 1, 2).T
    return float(np.abs(np.minimum(D * S, G)).max() / scale)


def kkt_residual(A, X, S, W=None) -> float:
    r"""Scale-free violation of the optimality conditions of NNLS.

    For :math:`\min_{S\ge0}\|X-AS\|_F`, with the gradient :math:`G = A^\top(AS - X)`
    and :math:`D = \operatorname{diag}(A^\top A)`,

    .. math::
        r(S) = \frac{\max_{ij} |\min(D S, G)_{ij}|}
                    {\max(\max_{ij} |A^\top X|_{ij}, \max_{ij} |A^\top A S|_{ij})} .

    :math:`\min(DS, G) = 0` entrywise exactly when :math:`S \ge 0`, :math:`G \ge 0` and
    :math:`S \odot G = 0`, so ``r(S) = 0`` if and only if ``S`` is a minimizer. The
    scaling by ``D`` gives ``S`` the units of ``G``, and the denominator makes ``r``
    invariant to rescaling ``A`` or ``X``. An exact solver reaches about ``1e-15``.

    Parameters
    ----------
    A : array_like, shape (N, k)
    X : array_like, shape (N, M)
    S : array_like, shape (k, M)
        Candidate solution; it may have negative entries (they count as violations).
    W : array_like of {0, 1}, shape (N, M), optional
        Data mask of the problem (see :func:`nnls`).

    Returns
    -------
    float
    """
    A = as_matrix(A, "A")
    if W is None:
        X = as_matrix(X, "X")
    else:
        X, W = as_masked_data(X, W)
    S = as_matrix(S, "S")
    check_same_rows(A, X)
    check_shape(S, (A.shape[1], X.shape[1]), "S", "columns of A x columns of X")
    return _kkt(*_grams(A, X, W), S)


def nnls_vjp(A, X, S, G, W=None):
    r"""Vector-Jacobian product of q: the gradient of :math:`\langle G, q(A,X)\rangle`.

    For a column :math:`x` with solution :math:`s = q(A, x)`, support
    :math:`T = \{i : s_i > 0\}`, residual :math:`r = x - A_T s_T` and upstream gradient
    :math:`g` (a column of ``G``), let :math:`z` solve
    :math:`(A_T^\top A_T) z = g_T`. Then

    .. math::
        \frac{\partial \langle g, s\rangle}{\partial x} = A_T z, \qquad
        \frac{\partial \langle g, s\rangle}{\partial A_{:,T}}
            = r z^\top - (A_T z) s_T^\top ,

    and the columns of :math:`A` outside :math:`T` get zero. The systems are solved with
    the columns grouped by support (one factorization per distinct support); no
    pseudoinverse is formed. The formula is the derivative wherever the support is
    locally constant (strict complementarity); elsewhere it is a one-sided derivative.

    Parameters
    ----------
    A : array_like, shape (N, k)
        Nonnegative dictionary.
    X : array_like, shape (N, M)
        Nonnegative data.
    S : array_like, shape (k, M)
        ``nnls(A, X)``; its support (``S > 0``) selects the active columns of ``A``.
    G : array_like, shape (k, M)
        Upstream gradient, the derivative of the loss with respect to ``S``.
    W : array_like of {0, 1}, shape (N, M), optional
        Data mask of the problem (see :func:`nnls`): :math:`A_T^\top A_T` becomes
        :math:`A_T^\top \operatorname{diag}(w) A_T`, and both gradients are masked,
        :math:`\partial/\partial x = w \odot A_T z` and
        :math:`\partial/\partial A_T = (w \odot r) z^\top - (w \odot A_T z) s_T^\top`.

    Returns
    -------
    dA : ndarray, shape (N, k)
    dX : ndarray, shape (N, M)

    Warns
    -----
    RankDeficiencyWarning
        If :math:`A_T` does not have full column rank for some column; the
        minimum-norm least-squares solution for :math:`z` is used there.
    """
    A = as_matrix(A, "A", nonnegative=True)
    X, W = as_masked_data(X, W)
    check_same_rows(A, X)
    shape = (A.shape[1], X.shape[1])
    S = as_matrix(S, "S", nonnegative=True)
    check_shape(S, shape, "S", "columns of A x columns of X")
    G = as_matrix(G, "G")
    check_shape(G, shape, "G", "columns of A x columns of X")
    dA, dX, singular = _vjp(A, X, S, G, W)
    if singular.any():
        warn(
            "A restricted to the support of S is rank-deficient for "
            f"{int(singular.sum())} of the columns; the least-squares (pseudoinverse) "
            "solution was used there.",
            RankDeficiencyWarning,
        )
    return dA, dX


def _vjp(A, X, S, G, W=None):
    """:func:`nnls_vjp` on validated input; also returns the singular-column flags."""
    CtC = A.T @ A if W is None else _grams(A, X, W)[0]
    Z, singular = _solve_on_supports(CtC, S > 0, G)
    AZ = A @ Z
    if W is None:
        return (X - A @ S) @ Z.T - AZ @ S.T, AZ, singular
    dX = W * AZ
    return (W * (X - A @ S)) @ Z.T - dX @ S.T, dX, singular
