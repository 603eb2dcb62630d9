r"""Nonnegative least squares for many right-hand sides, and its derivative.

The operator at the heart of Neural NMF is

.. math:: q(A, X) = \operatorname*{argmin}_{S \ge 0} \|X - A S\|_F ,

solved column by column. :func:`~nnmf_lib.nnls` solves all columns at once by block
principal pivoting (Kim & Park, 2011) with the columns grouped by their passive set, so
that the work is a few batched linear solves instead of a Python loop over columns.
:func:`~nnmf_lib.nnls_vjp` differentiates :math:`q` (the vector-Jacobian product used
by backpropagation) and :func:`~nnmf_lib.kkt_residual` measures how optimal a candidate
``S`` is.

How the answer is kept exact at any conditioning:

1. the columns of ``A`` and ``X`` are scaled by powers of two (exactly) to unit size;
2. ``A = Q R`` (QR factorization, ``R`` is k x k) reduces the problem to k dimensions
   without squaring the condition number: :math:`\|x - As\|^2 = \|c - Rs\|^2 + \|(I -
   QQ^\top)x\|^2` with :math:`c = Q^\top x`; when the Gram matrix C of the
   unit-norm topics is well conditioned (:math:`\kappa(C) \le 10^4`, where squaring
   the condition number costs an error of the order of :math:`u\kappa(C) \le 10^4 u`,
   about :math:`10^{-12}`), :math:`C` and :math:`A^\top X` are formed directly and R
   is the Cholesky factor of C instead;
3. on each passive set T the inverse of the Gram block :math:`C_{TT}` (:math:`C =
   R^\top R`) gives a first solution, which iterative refinement corrects with
   residuals :math:`c - R s` computed from ``R`` and ``c``, not from the Gram matrix;
   blocks too ill-conditioned for that are solved from the SVD of :math:`R_{:,T}`
   (minimum-norm where :math:`A_{:,T}` is rank-deficient); when C is well conditioned
   (:math:`\kappa(C) \le 10^4`) and the supports are many and nearly full, the inverse
   of C and the Schur complement on the few topics off each support replace the
   blocks' inverses (``_complement_part``);
4. on the QR path without a mask, a column with a topic off the support whose dual
   variable is within the pivoting's threshold of zero, and whose dual projected off
   the support says it lowers the objective, gets it freed and a few Lawson-Hanson
   exchanges (the polish, in ``_nnls``);
5. the KKT conditions of the result are verified, and columns that miss them (or that
   the pivoting did not finish in ``max_iter`` sweeps) are finished by a batched
   Lawson-Hanson active-set method.

Shapes follow the book: ``A`` is N x k, ``X`` is N x M (columns are samples),
``S`` is k x M. Internal names: ``F`` passive set (free variables), ``V`` infeasible
set, ``C``/``B`` the Gram matrices :math:`R^\top R` and :math:`R^\top c` (that is,
:math:`A^\top A` and :math:`A^\top X` in the scaled units), ``a``/``e`` the exponents of
the power-of-two scales of the columns of ``A`` and ``X``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import numpy as np
import threadpoolctl
from scipy.linalg import lapack

from ._sparse import (
    SparseMask,
    abs_max,
    axis_max,
    is_sparse,
    sampled,
    scale,
    scale_columns,
    times_t,
)
from ._validation import (
    AccuracyWarning,
    ConvergenceWarning,
    RankDeficiencyWarning,
    as_data,
    as_mask,
    as_masked_data,
    as_matrix,
    check_int,
    check_same_rows,
    check_shape,
    warn,
)

__all__ = ["NNLSInfo", "kkt_residual", "nnls", "nnls_vjp"]

# Infeasibility threshold of the pivoting, relative to the scale of each column, in
# units of k * eps (the rounding error of a dual variable y_i = (C x)_i - B_i): near
# it, so that a topic that improves the fit only slightly is still taken in (below it,
# the polish of _nnls looks again, on the QR path).
_RTOL = 8.0
# The promised optimality: a KKT residual above it is reported (AccuracyWarning).
_KKT_TOL = 1e-10
# The number of Lawson-Hanson exchanges of the polish after the pivoting (see _nnls).
_POLISH_STEPS = 10
# A Gram block whose estimated condition number exceeds _COND_GRAM is solved from the
# SVD of R on its support (refinement from its inverse would converge too slowly);
# below _COND_EXACT the inverse alone is exact to rounding and no refinement is done.
_COND_GRAM = 1e10
_COND_EXACT = 1e4
# Singular values of R on a support below _RCOND times the largest are treated as
# zero: the support is rank-deficient and the minimum-norm solution is used.
_RCOND = 1e-12
# With sparse data and a mask, eigenvalues of Q^T diag(w) Q (at most 1) below this
# are rounding errors: directions of A that the mask removes entirely.
_GRAM_FLOOR = 1e-13
# Up to this many topics, supports are grouped through a table of all 2^k codes.
_TABLE_K = 12
# Up to this many topics, all supports are solved in one padded batch (fewer calls).
_PAD_K = 16
# Batches of n blocks of size s with n s^3 at least this are inverted through their
# Cholesky factors; smaller ones by np.linalg.inv (fewer calls).
_CHOLESKY_WORK = 1 << 17
# Columns solved through the complement are batched by the number q of topics off
# their support, each batch padded to its largest q; a batch holds at least this many
# columns (or all the rest).
_COMPLEMENT_BATCH = 128
# A block inverse whose gathered copies (one s x s copy per column that uses it) would
# hold at least this many entries is applied to its columns in one matrix product
# instead (each such product costs about as much as gathering 2**15 entries).
_SHARED_BLOCK = 1 << 15
# Upper bound on the number of entries gathered at once (memory guard).
_CHUNK_ENTRIES = 1 << 22
# Data whose column exponents stay within +-_SAFE_EXP can be multiplied unscaled.
_SAFE_EXP = 500
_TINY = np.finfo(float).tiny
# From this many topics on, the many small solves (and the QR factorization) run on
# one BLAS thread: threading inside thousands of small LAPACK calls only costs
# synchronization, and on a busy machine it made them 10 to 50 times slower.
_ONE_THREAD_K = 32
_BLAS = []  # the threadpool controller, created on first use


@dataclass
class NNLSInfo:
    """What :func:`nnls` did.

    Attributes
    ----------
    n_iter : int
        Number of pivoting sweeps (0 when the starting support was already optimal).
    kkt_residual : float
        :func:`kkt_residual` of the returned solution (verified, scale-free).
    n_fallback : int
        Columns finished by the Lawson-Hanson active-set method, because the pivoting
        did not settle them within ``max_iter`` sweeps or their KKT residual was above
        1e-10.
    rank_deficient : bool
        Whether ``A`` is rank-deficient on the support of some column of the solution
        (the solution is then not unique; the minimum-norm one on that support, for
        unit-norm topics, is returned).
    n_rank_deficient : int
        The number of such columns.
    n_ill_conditioned : int
        Columns whose support was too ill-conditioned for the Gram matrix (condition
        number of ``A`` on it above about 1e5) and was solved from the SVD of ``R``.
    """

    n_iter: int
    kkt_residual: float
    n_fallback: int
    rank_deficient: bool
    n_rank_deficient: int = 0
    n_ill_conditioned: int = 0


def _chunks(n: int, entries_per_item: int):
    """Slices that split ``range(n)`` into chunks that gather a bounded memory."""
    step = max(1, _CHUNK_ENTRIES // max(entries_per_item, 1))
    return (slice(i, i + step) for i in range(0, n, step))


def _small_solves(k: int):
    """A context for the batched small solves of a problem with k topics."""
    return _one_thread(k >= _ONE_THREAD_K)


def _one_thread(needed: bool = True):
    """A context in which BLAS and LAPACK use one thread (a no-op if not needed)."""
    if not needed:
        return contextlib.nullcontext()
    if not _BLAS:
        _BLAS.append(threadpoolctl.ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _exponent(values):
    """Exponents ``e`` with ``values * 2**-e`` in [0.5, 1) (0 for zeros)."""
    return np.frexp(values)[1]


def _mul(M, x, transpose: bool = False):
    """``M @ x`` (or ``M.T @ x``) column by column, for one M or a stack of them."""
    if M.ndim == 2:
        return (M.T if transpose else M) @ x
    return np.einsum("mji,jm->im" if transpose else "mij,jm->im", M, x)


# ----------------------------------------------------------------------------------
# The reduced problem


@dataclass
class _Reduced:
    """:math:`\\min_{s\\ge0}\\|x - As\\|` reduced to :math:`\\min_{s\\ge0}\\|c - Rs\\|`.

    With ``A D^-1 = Q R`` (unit-norm topics, ``D = diag(m 2**a)`` their norms) and
    ``X 2**-e`` (columns scaled by powers of two), ``c = Q^T X 2**-e`` and
    ``q(A, X) = D^-1 q(R, c) 2**e``. ``R`` is r x k (``r = min(N, k)``), or M x r x k
    with a data mask (one factorization per column); ``C = R^T R``, ``B = R^T c``.
    When C is well conditioned, R is its Cholesky factor instead, B is formed as
    ``(A D^-1)^T X 2**-e`` and ``c`` only when asked for (:meth:`rhs`).
    """

    R: np.ndarray
    C: np.ndarray
    m: np.ndarray
    a: np.ndarray
    c: np.ndarray | None = None
    B: np.ndarray | None = None
    e: np.ndarray | None = None
    # The number of columns of the whole problem (kept by take()).
    columns: int = 0
    # The inverse of C for the complement solves (see inverse()), once computed.
    cache: dict = field(default_factory=dict, repr=False)

    def take(self, cols) -> _Reduced:
        """The problem of some columns only."""
        if self.C.ndim == 2:  # the same R and C, and the same inverse
            return _Reduced(
                self.R,
                self.C,
                self.m,
                self.a,
                None if self.c is None else self.c[:, cols],
                self.B[:, cols],
                self.e[cols],
                self.columns,
                self.cache,
            )
        R, C = self.R[cols], self.C[cols]
        c, B, e = self.c[:, cols], self.B[:, cols], self.e[cols]
        return _Reduced(R, C, self.m, self.a, c, B, e, self.columns)

    def rhs(self) -> np.ndarray:
        """``c``; formed as ``R^-T B`` when the Gram matrices were formed directly
        (:func:`_gram_factor`). Only refinement and the SVD solves need it, which
        there essentially never happen (only through rounding at the threshold)."""
        if self.c is None:
            self.c = lapack.dtrtrs(self.R, self.B, trans=1)[0]
        return self.c

    def inverse(self) -> np.ndarray | None:
        """``C^-1`` bordered by the identity on k // 2 + 1 dummy topics k, k + 1, ...
        (which pad the complements of :func:`_complement_part`), when C is shared and
        so well conditioned that every block ``C_TT`` solved through it is as accurate
        as when inverted on its own; None otherwise."""
        if "P" not in self.cache:
            shared = self.C.ndim == 2
            sigma = self.cache.get("sigma")
            self.cache["P"] = _bordered_inverse(self.R, sigma) if shared else None
        return self.cache["P"]

    def unscaled(self, x, power: int = 1, data: bool = True) -> np.ndarray:
        """``D^-power x 2**e`` (power 1: a solution in the caller's units); without
        the data's scales ``2**e`` when ``data`` is false."""
        e = self.e[None, :] if data else 0
        return np.ldexp(x / self.m[:, None] ** power, e - power * self.a[:, None])


def _column_norms(A: np.ndarray):
    """The column norms of a nonnegative A as ``m 2**a`` (m in [0.5, 1), 1 for a zero
    column), computed without overflow or underflow."""
    top = _exponent(A.max(axis=0))  # the largest entry first: no overflow, no underflow
    if not (top.min() > -_SAFE_EXP and top.max() < _SAFE_EXP):
        A = np.ldexp(A, -top)
    else:
        top = 0
    m, a = np.frexp(np.sqrt(np.einsum("ij,ij->j", A, A)))
    return np.where(m > 0, m, 1.0), a + top


def _reduce(A, X=None, W=None, x_exp=None) -> _Reduced:
    """Reduce ``min ||W * (X - A S)||`` to k dimensions (``X`` may be None when only
    the factorization of ``A`` is needed). ``x_exp``: exponents of the column maxima of
    ``X`` when the caller knows them (X fixed over many calls).

    Without a mask, when the Gram matrix ``C`` of the unit-norm topics has
    ``cond(C) <= _COND_EXACT``, C and ``A^T X`` are formed directly and R is the
    Cholesky factor of C (:func:`_gram_factor`); otherwise ``A = QR``. Below that
    condition number a QR reduction would not be more accurate: every block has
    ``cond(C_TT) <= cond(C)`` (interlacing), so its solution comes from the block's
    inverse without refinement either way, with an error of about u cond(C).
    """
    m, a = _column_norms(A)
    A = np.ldexp(A, -a) / m  # unit-norm topics
    gram = _gram_factor(A) if W is None else None
    if gram is not None:  # C and R from A^T A; the data enter through A^T X
        R, C, sigma = gram
        project = (lambda X: A.T @ X) if X is not None else None
    elif W is None:
        with _one_thread(A.size >= 4096):  # threads thrash in QR on a busy machine
            Q, R = _qr(A)
        C = _mul(R, R, transpose=True)
        project = (lambda X: Q.T @ X) if X is not None else None
    elif isinstance(W, SparseMask):  # sparse data: per-column factors from Grams
        R, project = _sparse_masked_qr(A, W)
    else:  # one factorization per column; X enters through the same loop
        R, p = _masked_qr(A, X, W)
        project = (lambda X: _masked_qr(A, X, W)[1]) if X is not None else None
    if R.ndim == 3:
        C = np.einsum("mji,mjk->mik", R, R)
    cache = {} if gram is None else {"sigma": sigma}
    if X is None:
        return _Reduced(R, C, m, a, cache=cache)
    # The columns of X are scaled by powers of two after the product when their
    # scales are moderate (checked on the result), before it otherwise.
    if W is None or isinstance(W, SparseMask):
        p = project(X)  # the one N x M product (sparse X: O(nnz(X) k))
    e = _exponent(np.abs(p).max(axis=0)) if x_exp is None else x_exp
    if np.isfinite(p).all() and e.min() > -_SAFE_EXP and e.max() < _SAFE_EXP:
        p = np.ldexp(p, -e)
    else:  # data of extreme scale
        e = _exponent(axis_max(X, 0))
        p = project(scale_columns(X, e))
    if gram is None:  # p is c = Q^T X 2**-e, and B = R^T c
        return _Reduced(R, C, m, a, p, _mul(R, p, transpose=True), e, p.shape[1], cache)
    return _Reduced(R, C, m, a, None, p, e, p.shape[1], cache)  # p is B; c: rhs()


def _gram_factor(A):
    """``(R, C, sigma)`` with ``C = A^T A = R^T R`` (R its Cholesky factor) and sigma
    the singular values of R, when ``cond(C) <= _COND_EXACT``; None otherwise (or for
    N < k, where C is singular)."""
    N, k = A.shape
    if N < k:
        return None
    C = A.T @ A  # symmetric to the last bit (numpy calls syrk)
    if _diagonal(C).min() < 0.5:  # a zero topic (the others have unit norm): singular
        return None
    lam, _, info = lapack.dsyevd(C, compute_v=0)  # ascending eigenvalues of C
    if info != 0 or not lam[0] > 0 or lam[-1] / lam[0] > _COND_EXACT:
        return None
    R, info = lapack.dpotrf(C)  # upper (the lower triangle zeroed): C = R^T R
    if info != 0:  # pragma: no cover - excluded by the condition number
        return None
    return R, C, np.sqrt(lam[::-1])


def _qr(A):
    """Thin QR factorization ``A = Q R`` (LAPACK directly: less overhead per call)."""
    lwork = 64 * A.shape[1] + 1  # room for the blocked algorithm
    qr, tau, _, info = lapack.dgeqrf(A, lwork=lwork)
    if info != 0:  # pragma: no cover - LAPACK argument errors only
        return np.linalg.qr(A)
    r = min(A.shape)
    Q = lapack.dorgqr(qr[:, :r], tau, lwork=lwork)[0]
    return Q, np.triu(qr[:r])


def _bordered_inverse(R, sigma=None):
    """``(R^T R)^-1`` bordered by the identity (see :meth:`_Reduced.inverse`), or None
    if ``cond(R^T R) > _COND_EXACT`` (or R is not square, as for N < k). ``sigma``:
    the singular values of R, if known."""
    r, k = R.shape
    if r < k:
        return None
    sigma = np.linalg.svd(R, compute_uv=False) if sigma is None else sigma
    if not sigma[-1] > 0 or (sigma[0] / sigma[-1]) ** 2 > _COND_EXACT:
        return None
    Ri, info = lapack.dtrtri(R)  # R is upper triangular
    if info != 0:  # pragma: no cover - excluded by the condition number
        return None
    P = np.eye(k + k // 2 + 1)
    P[:k, :k] = Ri @ Ri.T
    return P


def _masked_qr(A, X, W):
    """For every column m, ``diag(W[:, m]) A = Q_m R_m``; returns the R_m (M x r x k)
    and ``c[:, m] = Q_m^T X[:, m]`` (the masked entries of X are zero)."""
    (N, k), M = A.shape, W.shape[1]
    R = np.empty((M, min(N, k), k))
    c = None if X is None else np.empty((min(N, k), M))
    for sl in _chunks(M, N * k):  # chunks of columns bound the memory
        with _one_thread(N * k >= 4096):
            Q, R[sl] = np.linalg.qr(W.T[sl, :, None] * A)
        if X is not None:
            c[:, sl] = np.einsum("mnr,nm->rm", Q, X[:, sl])
    return R, c


def _sparse_masked_qr(A, W: SparseMask):
    """Per-column factors for sparse data with a mask, without an N x M array.

    With ``A = Q R`` and the Gram matrices ``G_m = Q^T diag(w_m) Q = V_m L_m V_m^T``
    (conditioned by the mask only: Q is orthonormal), ``R_m = L_m^(1/2) V_m^T R``
    satisfies ``R_m^T R_m = A^T diag(w_m) A``, and ``c_m = L_m^(-1/2) V_m^T Q^T x_m``
    (for ``X = W * X``) makes ``||w_m * (x_m - A s)||^2 = ||c_m - R_m s||^2`` plus a
    constant. O(nnz(P) k^2 + M k^3) time; returns the M x r x k stack of ``R_m`` and
    the projection ``X -> c``.
    """
    with _one_thread(A.size >= 4096):
        Q, R = _qr(A)
    lam, V = np.linalg.eigh(W.grams(Q))  # M x r and M x r x r
    keep = lam > _GRAM_FLOOR
    root = np.sqrt(np.where(keep, lam, 0.0))
    inv = np.divide(1.0, root, out=np.zeros_like(root), where=keep)
    Rm = (root[:, :, None] * np.swapaxes(V, 1, 2)) @ R

    def project(X):
        return np.einsum("mji,jm->im", V, Q.T @ X) * inv.T

    return Rm, project


# ----------------------------------------------------------------------------------
# Least squares on given supports


def _group_columns(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group the columns of a boolean k x m matrix by identical pattern.

    Returns the distinct patterns (G x k) and, for each column, the index of its group.
    Up to 62 rows a column is one integer code; beyond, it is packed into 64-bit words
    that are sorted, which is much faster than ``np.unique(F.T, axis=0)``. Up to
    _TABLE_K rows, a table of all 2^k codes replaces the sort (the same result).
    """
    k, m = F.shape
    if k <= _TABLE_K:
        bits = np.int64(1) << np.arange(k, dtype=np.int64)
        codes = bits @ F
        present = np.bincount(codes, minlength=1 << k) > 0
        group = (np.cumsum(present) - 1)[codes]
        return (np.flatnonzero(present)[:, None] & bits) != 0, group
    if k <= 62:
        bits = np.int64(1) << np.arange(k, dtype=np.int64)
        codes, group = np.unique(bits @ F, return_inverse=True)
        return (codes[:, None] & bits) != 0, group.reshape(-1)
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


@dataclass
class _Part:
    """Columns whose blocks were inverted in one batch.

    ``cols`` is ascending (so a part of all m columns has ``cols == arange(m)``).
    ``rows`` is None for the padded batch (every block k x k, the identity off the
    support) or the n x s support of each column. ``P`` holds the block inverses,
    ``which`` the block of each column; ``K`` the pseudoinverses of R on the support
    of the ill-conditioned (``hard``) blocks, ``K[slot[b]]`` for block b.
    """

    cols: np.ndarray
    rows: np.ndarray | None
    which: np.ndarray
    P: np.ndarray
    hard: np.ndarray
    slot: np.ndarray | None
    K: tuple | None


@dataclass
class _Factor:
    """The factorized Gram blocks of the supports ``F`` (k x m) of some columns."""

    F: np.ndarray
    parts: list
    singular: np.ndarray  # per column: A is rank-deficient on its support
    hard: np.ndarray  # per column: solved from the SVD of R on its support
    refine: bool  # some block is conditioned badly enough to need refinement


def _factor(C, F, R=None, red: _Reduced | None = None) -> _Factor:
    """Invert the Gram blocks ``C[T, T]`` of the supports ``T = F[:, j]``.

    ``C`` is one k x k Gram matrix shared by all columns (then the columns are grouped
    by support: one block per distinct support) or an m x k x k stack, one per column.
    Supports are batched by size, or all in one padded batch when k is small, so the
    Python loop runs over support sizes, never over columns. ``R`` (r x k or m x r x
    k, with ``C = R^T R``) serves the ill-conditioned blocks; without it they use the
    square root of the Gram block. Given the reduced problem ``red`` (whose ``C`` this
    is), columns whose supports miss few topics are solved through the inverse of
    ``C`` instead when that is cheaper (:func:`_complement_part`).
    """
    k, m = F.shape
    shared = C.ndim == 2
    fac = _Factor(F, [], np.zeros(m, bool), np.zeros(m, bool), False)
    rest = np.arange(m)  # the columns left to the blocks
    if red is not None and shared and red.cache.get("complement") and m:
        # An earlier factorization of this problem chose the complement: the later
        # ones (sweeps, the gradient) use it for every column it serves.
        out = k - F.sum(axis=0)
        taken = out <= k // 2
        if taken.any():
            _add_complement(fac, F, np.flatnonzero(taken), out, red.inverse())
        rest = np.flatnonzero(~taken)
        if rest.size == 0:
            return fac
        patterns, group = _group_columns(F[:, rest])
    else:
        patterns, group = _group_columns(F) if shared else (F.T, np.arange(m))
        if m == 0:
            return fac
        if red is not None and shared:
            taken = _complement_part(fac, patterns, group, red)
            if taken is not None:
                rest = np.flatnonzero(~taken)
                used, group = np.unique(group[rest], return_inverse=True)
                patterns, group = patterns[used], group.reshape(-1)
                if rest.size == 0:
                    return fac
    if k <= _PAD_K:  # small k: a single batch, each block padded with the identity
        on = patterns[:, :, None] & patterns[:, None, :]
        blocks = np.where(on, C, 0.0)
        idx = np.arange(k)
        blocks[:, idx, idx] += ~patterns
        _add_part(fac, blocks, patterns, rest, None, group, R)
        return fac
    sizes = patterns.sum(axis=1)
    local = np.empty(len(patterns), dtype=np.intp)  # index of a group in its class
    for s in np.unique(sizes[sizes > 0]):
        in_class = np.flatnonzero(sizes == s)
        local[in_class] = np.arange(in_class.size)
        T = np.nonzero(patterns[in_class])[1].reshape(-1, s)  # support of each group
        cols = np.flatnonzero(sizes[group] == s)
        which = local[group[cols]]
        if shared:
            blocks = C[T[:, :, None], T[:, None, :]]
        else:  # one block per column
            blocks = C[cols[:, None, None], T[:, :, None], T[:, None, :]]
        _add_part(fac, blocks, T, rest[cols], T[which], which, R)
    return fac


@dataclass
class _Complement:
    """Columns solved through the inverse ``P`` of the whole Gram matrix.

    The columns are sorted by the number ``q`` of topics off their support, and
    solved in batches: batch b holds those with ``limits[b - 1] < q <= limits[b]``.
    ``U`` (n x limits[-1]) holds the topics off each column's support, then distinct
    dummy topics k, k + 1, ... of the bordered ``P`` (see :meth:`_Reduced.inverse`),
    so that ``P[U, U]`` (the first ``limits[b]`` of them in batch b) is ``P_UU``
    bordered by the identity.
    """

    cols: np.ndarray
    U: np.ndarray
    P: np.ndarray
    q: np.ndarray
    limits: list

    def keep(self, mask) -> _Complement:
        """The part of the columns where ``mask`` is true."""
        return _Complement(
            self.cols[mask], self.U[mask], self.P, self.q[mask], self.limits
        )


def _complement_part(fac, patterns, group, red):
    """Record in ``fac`` the columns to solve through the inverse of C, and return
    which they are (None for none).

    With ``P = C^-1`` and ``U`` the topics off a support ``T``, the Schur complement
    gives ``(C_TT)^-1 = P_TT - P_TU (P_UU)^-1 P_UT``: a support that misses q topics
    costs one q x q solve per column instead of one s x s inverse per distinct
    support. That pays when the supports are many and nearly full (the first layer of
    Neural NMF in ``benchmarks/bench_neural.py``: 650 distinct supports of 13 to 20 of
    20 topics among 1000 columns). Its rounding error grows like u cond(C), not like
    u cond(C_TT) as with the block's own inverse (for supports that leave out one of
    two nearly equal topics, at cond(C) = 1.4e4: 2e-13 relative against 7e-15), so it
    is used only when ``cond(C) <= _COND_EXACT``. There no block is refined either
    way (``cond(C_TT) <= cond(C)`` by interlacing), and the error stays within the
    bound u _COND_EXACT that the blocks solved without refinement have.
    """
    k = fac.F.shape[0]
    if red.columns * k**3 < _CHOLESKY_WORK or (
        k <= _PAD_K and 50.0 + len(patterns) * (6e-4 * k**3 + 0.5) <= 100.0
    ):  # see below
        return None
    sizes = patterns.sum(axis=1)
    out = (k - sizes)[group]  # topics off each column's support
    taken = out <= k // 2
    if not taken.any():
        return None
    q = int(out[taken].max())
    # Small problems keep the blocks (their time is calls, not arithmetic). Otherwise,
    # the time of the block inverses of these supports against that of two solves
    # with the complement per column (the forward solve and, typically, one more),
    # in microseconds as measured on one core (batched calls cost about 50 each).
    distinct = np.zeros(len(patterns), dtype=bool)
    distinct[group[taken]] = True
    s = sizes[distinct] if k > _PAD_K else np.full(int(distinct.sum()), k)
    classes = 1 if k <= _PAD_K else len(np.unique(s))
    blocks = 50.0 * classes + float(np.sum(6e-4 * s.astype(float) ** 3 + 0.5))
    if blocks <= 100.0 + 2.0 * int(taken.sum()) * (5e-4 * q**3 + 0.3):
        return None
    P = red.inverse()
    if P is None:
        return None
    red.cache["complement"] = True
    _add_complement(fac, fac.F, np.flatnonzero(taken), out, P)
    return taken


def _add_complement(fac, F, cols, out, P):
    """Record in ``fac`` the complement solves of the columns ``cols`` of F, which
    miss ``out`` topics each, with the bordered inverse P."""
    k = F.shape[0]
    cols = cols[np.argsort(out[cols], kind="stable")]
    qs = out[cols]
    limits = _batch_limits(qs)
    # The topics off each support, in order, then the dummy topics k, k + 1, ...
    r, i = np.nonzero(~F[:, cols].T)  # row by row, in order
    U = k + np.arange(limits[-1]) - qs[:, None]
    U[r, np.arange(r.size) - np.repeat(np.cumsum(qs) - qs, qs)] = i
    fac.parts.append(_Complement(cols, U, P, qs, limits))


def _batch_limits(qs) -> list:
    """Batches of the complement solves by the number q of topics off the support
    (sorted ``qs``): a new batch starts when the one being filled holds
    _COMPLEMENT_BATCH columns. Returns the largest q of each batch."""
    counts = np.cumsum(np.bincount(qs))
    limits, start = [], 0
    for value, count in enumerate(counts):
        if count - start >= _COMPLEMENT_BATCH or value == len(counts) - 1:
            limits.append(value)
            start = count
    return limits


def _merge_complements(parts: list, k: int) -> list:
    """``parts`` with its complement parts merged into one (fewer, larger batches,
    for a factorization applied more than once)."""
    both = [p for p in parts if isinstance(p, _Complement)]
    if len(both) < 2:
        return parts
    width = max(p.U.shape[1] for p in both)
    U = np.concatenate(
        [
            np.concatenate([p.U, k + np.arange(p.U.shape[1], width) - p.q[:, None]], 1)
            for p in both
        ]
    )
    qs, cols = (
        np.concatenate([p.q for p in both]),
        np.concatenate([p.cols for p in both]),
    )
    order = np.argsort(qs, kind="stable")
    merged = _Complement(cols[order], U[order], both[0].P, qs[order], [])
    merged.limits = _batch_limits(merged.q)
    return [p for p in parts if not isinstance(p, _Complement)] + [merged]


def _add_part(fac, blocks, T, cols, rows, which, R):
    """Invert one batch of blocks and record it in ``fac``."""
    try:
        P = _spd_inverse(blocks)
        # Both are positive definite, so their largest entries are on the diagonals:
        # the product estimates the condition number within a factor s^2. (Rounding
        # can make a singular block indefinite: its inverse then has a huge negative
        # diagonal entry, hence the absolute value.)
        cond = _diagonal(blocks).max(axis=1) * np.abs(_diagonal(P)).max(axis=1)
        hard = ~(cond <= _COND_GRAM)  # also catches NaN
    except np.linalg.LinAlgError:  # an exactly singular block: use the SVD for all
        P, cond = blocks, np.full(len(blocks), np.inf)
        hard = np.ones(len(blocks), dtype=bool)
    slot, K, singular = None, None, np.zeros(len(blocks), dtype=bool)
    if hard.any():
        slot = np.cumsum(hard) - 1
        K, singular[hard] = _pinv_on_supports(
            blocks[hard], T[hard], cols, which, hard, R
        )
    fac.parts.append(_Part(cols, rows, which, P, hard, slot, K))
    fac.singular[cols], fac.hard[cols] = singular[which], hard[which]
    fac.refine |= bool((cond[~hard] > _COND_EXACT).any())


def _spd_inverse(blocks):
    """Inverses of a stack of symmetric positive (semi)definite blocks.

    Large batches go through the Cholesky factors ``C = L L^T`` (one fast batched
    LAPACK call) and ``C^-1 = L^-T L^-1``, with ``L^-1`` formed row by row for all
    blocks at once (``s`` small batched products): for 650 blocks of 20 x 20 that
    took half the time of ``np.linalg.inv`` (an LU factorization and ``s`` solves per
    block), with the same accuracy (an error of about u cond(C) either way). Small
    batches, and batches with a block that is not numerically positive definite, use
    ``np.linalg.inv`` (whose LinAlgError, for an exactly singular block, the caller
    handles).
    """
    n, s = blocks.shape[:2]
    if n * s**3 < _CHOLESKY_WORK:
        return np.linalg.inv(blocks)
    try:
        L = np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError:
        return np.linalg.inv(blocks)
    d = 1.0 / _diagonal(L)
    Li = np.zeros_like(L)
    Li[:, 0, 0] = d[:, 0]
    for j in range(1, s):  # row j of L^-1: -(L[j, :j] L^-1[:j, :j]) / L[j, j]
        Li[:, j, :j] = (
            np.matmul(L[:, j : j + 1, :j], Li[:, :j, :j])[:, 0] * -d[:, j, None]
        )
        Li[:, j, j] = d[:, j]
    return np.matmul(np.swapaxes(Li, 1, 2), Li)


def _diagonal(M):
    """The diagonals of a matrix or of a stack of matrices (a view)."""
    return np.diagonal(M, axis1=-2, axis2=-1)


def _pinv_on_supports(blocks, T, cols, which, hard, R):
    """Pseudoinverses of R restricted to the supports of ill-conditioned blocks, as
    the factors ``(U^T, 1/sigma, V)`` of their SVD (zero beyond the numerical rank), and
    whether each support is rank-deficient."""
    padded = T.dtype == bool
    if R is None:  # the square root of the Gram block stands for R on the support
        w, V = np.linalg.eigh(blocks)
        R_T = np.sqrt(np.maximum(w, 0.0))[:, :, None] * np.swapaxes(V, 1, 2)
    else:
        if R.ndim == 3:  # one R per column, one block per column
            R = R[cols[np.flatnonzero(hard[which])]]
        if padded:
            R_T = np.where(T[:, None, :], R, 0.0)
        elif R.ndim == 2:
            R_T = np.swapaxes(R[:, T], 0, 1)
        else:
            R_T = np.take_along_axis(R, T[:, None, :], axis=2)
    U, sigma, Vt = np.linalg.svd(R_T, full_matrices=False)
    keep = sigma > _RCOND * sigma[:, :1]
    inv = np.divide(1.0, sigma, out=np.zeros_like(sigma), where=keep)
    size = T.sum(axis=1) if padded else np.full(len(T), T.shape[1])
    # Kept as factors: applying V diag(1/sigma) U^T one factor at a time is backward
    # stable; the product formed as one matrix would not be.
    return (np.swapaxes(U, 1, 2), inv, np.swapaxes(Vt, 1, 2)), keep.sum(axis=1) < size


def _apply(fac: _Factor, g: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    """``z`` with ``z_T = C_TT^{-1} g_T`` on every support T (zero elsewhere).

    For the ill-conditioned blocks, ``z_T = R_T^+ r`` when the k-space residual ``r``
    (with ``g = R^T r``) is given, which keeps the accuracy of a QR solve, and
    ``z_T = R_T^+ R_T^{+T} g_T`` otherwise.
    """
    Z = np.zeros(fac.F.shape)
    for p in fac.parts:
        if isinstance(p, _Complement):
            _apply_complement(p, fac.F, g, Z)
            continue
        s = p.P.shape[1]
        for sl in _chunks(p.cols.size, s * s):
            cols, which = p.cols[sl], p.which[sl]
            every = cols.size == Z.shape[1]  # then cols is arange(m)
            if p.rows is None:  # padded: mask g off the support
                on = fac.F if every else fac.F[:, cols]
                gs = np.where(on, g if every else g[:, cols], 0.0).T
            else:
                gs = g[p.rows[sl], cols[:, None]]
            z = _block_products(p.P, which, gs)
            hard = p.hard[which]
            if hard.any():
                Ut, inv, V = (f[p.slot[which[hard]]] for f in p.K)
                if r is None:  # (R_T^T R_T)^+ g = V diag(1/sigma^2) V^T g
                    t = (np.swapaxes(V, 1, 2) @ gs[hard][:, :, None]) * inv[:, :, None]
                else:  # R_T^+ r = V diag(1/sigma) U^T r
                    t = Ut @ r[:, cols[hard]].T[:, :, None]
                z[hard] = (V @ (t * inv[:, :, None]))[:, :, 0]
            if p.rows is None:
                Z[:, cols] = np.where(on, z.T, 0.0)
            else:
                Z[p.rows[sl], cols[:, None]] = z
    return Z


def _block_products(P, which, g) -> np.ndarray:
    """``z[j] = P[which[j]] @ g[j]`` for every column j (rows of ``g`` and ``z``).

    A block shared by so many columns that their copies would hold _SHARED_BLOCK
    entries is applied to all of them in one matrix product; the other columns go
    through one batched product of gathered blocks (a Python loop runs over the
    shared blocks only, never over columns).
    """
    size = P.shape[1] ** 2
    shared = np.zeros(len(P), dtype=bool)
    if len(which) * size >= _SHARED_BLOCK:  # otherwise no block can be shared enough
        counts = np.bincount(which, minlength=len(P))
        shared = counts * size >= _SHARED_BLOCK
    if not shared.any():
        return (P[which] @ g[:, :, None])[:, :, 0]
    z = np.empty(g.shape)
    order = np.argsort(which, kind="stable")
    ends = np.cumsum(counts)
    for b in np.flatnonzero(shared):  # z_J = (P[b] g_J^T)^T = g_J P[b]^T
        cols = order[ends[b] - counts[b] : ends[b]]
        z[cols] = g[cols] @ P[b].T
    rest = ~shared[which]
    if rest.any():
        z[rest] = (P[which[rest]] @ g[rest][:, :, None])[:, :, 0]
    return z


def _apply_complement(p: _Complement, F, g, Z):
    """``Z[:, p.cols]``: ``z = v - P_U (P_UU)^-1 v_U`` with ``v = P g`` (g zero off the
    support), which is ``C_TT^-1 g_T`` on the support T and zero (to rounding, set
    exactly) off it."""
    k = F.shape[0]
    on = F[:, p.cols]
    v = p.P[:, :k] @ np.where(on, g[:, p.cols], 0.0)  # zero on the dummy topics
    W = np.zeros_like(v)  # w scattered to the topics U of each column
    ends = np.searchsorted(p.q, p.limits, side="right")
    for q, start, end in zip(p.limits, [0, *ends[:-1]], ends, strict=True):
        if q == 0:
            continue
        for sl in _chunks(end - start, q * q):
            n = np.arange(start, end)[sl, None]
            U = p.U[n[:, 0], :q]
            w = np.linalg.solve(p.P[U[:, :, None], U[:, None, :]], v[U, n][:, :, None])
            W[U, n] = w[:, :, 0]
    v -= p.P @ W
    Z[:, p.cols] = np.where(on, v[:k], 0.0)


def _solve(red: _Reduced, fac: _Factor) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on the passive sets: ``x`` (zero off F), ``y = Cx - B`` (0 on F).

    The first solution comes from the block inverses; refinement then corrects it with
    the residual ``c - R x`` computed from R and c (not from the Gram matrix), which
    converges to the accuracy of a QR solve.
    """
    x = _apply(fac, red.B, red.rhs() if fac.hard.any() else red.c)
    if fac.refine:
        for _ in range(3):
            r = red.rhs() - _mul(red.R, x)
            dx = _apply(fac, _mul(red.R, r, transpose=True), r)
            x += dx
            if np.abs(dx).max() <= 4e-16 * np.abs(x).max():
                break
    y = _mul(red.C, x) - red.B
    y[fac.F] = 0.0
    return x, y


def _patch(fac: _Factor, new: _Factor, cols: np.ndarray) -> _Factor:
    """``fac`` with the factors of the columns ``cols`` (boolean) taken from ``new``
    (whose parts are moved, renumbered, not copied)."""
    index = np.flatnonzero(cols)
    parts = []
    for p in fac.parts:
        mask = ~cols[p.cols]
        if not mask.any():  # every column of this part was replaced
            continue
        if isinstance(p, _Complement):
            parts.append(p.keep(mask))
            continue
        rows = None if p.rows is None else p.rows[mask]
        parts.append(_Part(p.cols[mask], rows, p.which[mask], p.P, p.hard, p.slot, p.K))
    for p in new.parts:
        p.cols = index[p.cols]
        parts.append(p)
    F = fac.F.copy()
    F[:, index] = new.F
    singular, hard = fac.singular.copy(), fac.hard.copy()
    singular[index], hard[index] = new.singular, new.hard
    return _Factor(F, parts, singular, hard, fac.refine or new.refine)


def _solve_on_supports(CtC, F, G, R=None) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``CtC[T, T] z_T = G[T, j]``, ``z`` zero off ``T = F[:, j]``, for every j.

    ``CtC`` is one k x k Gram matrix shared by all columns, or an m x k x k stack with
    one Gram matrix per column. Returns ``Z`` (k x m) and a boolean vector marking the
    columns whose block was singular (minimum-norm solution there).
    """
    fac = _factor(CtC, F, R)
    return _apply(fac, G), fac.singular


# ----------------------------------------------------------------------------------
# Block principal pivoting, the fallback, and the solver


@dataclass
class _Solution:
    """What :func:`_nnls` knows after solving: reusable by the vector-Jacobian product
    and by callers that need ``A^T X`` (``red.B``, scaled)."""

    S: np.ndarray
    red: _Reduced
    fac: _Factor
    info: NNLSInfo

    def AtX(self) -> np.ndarray:
        """``A^T X`` in the caller's units."""
        return self.red.unscaled(self.red.B, power=-1)


def _nnls(
    A, X, W=None, support=None, max_iter: int = 100, x_exp=None, complement=False
):
    """:func:`nnls` on validated input; returns ``S`` and the :class:`_Solution`.

    Scale and QR-reduce, pivot, polish, verify the KKT conditions column by column,
    finish the columns that miss them by the active-set method, and scale back.
    ``complement`` says that a previous, nearby problem (the one ``support`` comes
    from) was solved through the complement (:func:`_complement_part`): this one then
    uses it wherever it can, without weighing the two paths again.
    """
    red = _reduce(A, X, W, x_exp)
    if complement and red.inverse() is not None:
        red.cache["complement"] = True
    k = red.B.shape[0]
    usable = _diagonal(red.C) > 0  # zero topics stay out
    usable = usable[:, None] if usable.ndim == 1 else usable.T
    if support is not None:
        support = support & usable
    with _small_solves(k):
        x, F, unfinished, n_iter, fac = _bpp(red, support, max_iter)
        # Polish (QR path, no mask): a topic left off a support whose dual variable
        # is near zero may still lower the objective, if it is nearly dependent on the
        # support; its dual at the computed x is too small to trust, the projected
        # one is not. A topic that passes that test is freed, and a few Lawson-Hanson
        # exchanges follow (the objective does not go up, to rounding).
        free = _projected_entries(red, x, F & (x > 0), fac.singular | unfinished)
        if free is not None:
            polish = free.any(axis=0)
            sub = red.take(polish)
            x[:, polish], F[:, polish] = _lawson_hanson(
                sub, x[:, polish], F[:, polish], _POLISH_STEPS, free=free[:, polish]
            )
            fac = _patch(fac, _factor(sub.C, F[:, polish], sub.R, sub), polish)
        num, den = _kkt_terms(red.C, red.B, x)
        redo = unfinished | (num.max(axis=0) > _KKT_TOL * den.max(axis=0))
        if redo.any():  # rare: the pivoting did not settle these columns
            sub = red.take(redo)
            x[:, redo], F[:, redo] = _lawson_hanson(
                sub, x[:, redo], F[:, redo], 3 * k + 10
            )
            fac = _patch(fac, _factor(sub.C, F[:, redo], sub.R, sub), redo)
            num[:, redo], den[:, redo] = _kkt_terms(sub.C, sub.B, x[:, redo])
    S = red.unscaled(x)
    info = NNLSInfo(
        n_iter=n_iter,
        kkt_residual=_caller_residual(num, den, red),
        n_fallback=int(redo.sum()),
        rank_deficient=bool(fac.singular.any()),
        n_rank_deficient=int(fac.singular.sum()),
        n_ill_conditioned=int(fac.hard.sum()),
    )
    return S, _Solution(S, red, fac, info)


def _tolerance(B, rtol: float = _RTOL):
    """Infeasibility threshold of the dual variables of each column, ``rtol`` times
    their rounding error."""
    eps = np.finfo(float).eps
    return rtol * B.shape[0] * eps * np.maximum(np.abs(B).max(axis=0), _TINY)


def _bpp(red: _Reduced, support, max_iter: int):
    """Block principal pivoting (Kim & Park 2011, Alg. 2) on the reduced problem.

    Returns ``x`` (scaled units), the final passive sets ``F``, the columns still
    infeasible after ``max_iter`` sweeps, the number of sweeps, and the factorization
    of the Gram blocks on ``F`` (patched column by column as the supports change).
    """
    C, B = red.C, red.B
    k, M = B.shape
    # Scale of each column's dual variable y and primal variable x, for the tolerances.
    tol_y = _tolerance(B)
    c_max = _diagonal(C).max(axis=-1)  # C is positive semidefinite
    tol_x = tol_y / np.maximum(c_max, _TINY)

    if support is None:  # empty passive set: x = 0 and the dual is -B
        F, x, y = np.zeros((k, M), dtype=bool), np.zeros((k, M)), -B
        fac = _Factor(F.copy(), [], np.zeros(M, bool), np.zeros(M, bool), False)
    else:
        F = support.copy()
        fac = _factor(C, F, red.R, red)
        x, y = _solve(red, fac)
    alpha = np.full(M, 3)  # full exchanges still allowed without progress
    beta = np.full(M, k + 1)  # smallest number of infeasibilities seen
    n_iter = 0
    todo = np.zeros(M, dtype=bool)
    for _ in range(max_iter + 1):
        V = (F & (x < -tol_x)) | (~F & (y < -tol_y))  # alg-bpp, step 3: infeasible
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
        F[:, full] ^= V[:, full]  # alg-bpp, steps 3.1-3.2: exchange all of V
        backup = np.flatnonzero(todo & ~full)
        if backup.size:  # step 3.3, Murty's rule: only the largest infeasible index
            last = k - 1 - np.argmax(V[::-1, backup], axis=0)
            F[last, backup] ^= True
        sub = red.take(todo)  # step 3.4: solve the changed columns, grouped
        new = _factor(sub.C, F[:, todo], sub.R, sub)
        x[:, todo], y[:, todo] = _solve(sub, new)
        fac = _patch(fac, new, todo)
    # Coefficients at rounding level of their column (a variable with a zero gradient
    # at a degenerate point) are zeros: exact zeros off the true support.
    floor = _RTOL * k * np.finfo(float).eps * x.max(axis=0)
    x = np.where(F & (x > floor), x, 0.0)
    return x, F, todo, n_iter, fac


def _projected_entries(red: _Reduced, x, F, skip):
    """On the QR path without a mask: the topic to free in each column (k x M, at
    most one per column) that its projected dual variable says lowers the objective,
    or None. ``F`` is the support of ``x``; columns marked in ``skip`` (rank-deficient
    supports, unfinished pivoting) are left alone.

    Of a topic t nearly dependent on the support T, the dual variable
    ``y_t = (C x - B)_t`` can be smaller than the error that a few units in the last
    place of x make in it, and so have the wrong sign. The projected one does not
    depend on x: with ``c_perp`` the part of c orthogonal to the columns of ``R_T``
    (projected with the QR factors of ``R_T``, twice, and set to zero when the second
    projection cancels: Parlett and Kahan's rule), ``w_t = R_t^T c_perp`` is minus half
    the derivative of ``||c - R s||^2`` along topic t at the exact least-squares
    solution on T (Lawson and Hanson's test). It is trusted above
    ``8 k eps (||c_perp|| + ||c|| ||R_t_perp||)`` (unit-norm topics; the second term
    bounds the error of the projection). Only columns with a topic off the support
    whose ``y_t`` is within the pivoting's threshold of zero are examined.
    """
    if red.C.ndim != 2 or "sigma" in red.cache:  # per-column R, or the Gram path
        return None
    k, M = F.shape
    r = red.R.shape[0]
    y = _mul(red.C, x) - red.B
    near = ~F & (y < _tolerance(red.B))
    size = F.sum(axis=0)
    cols = np.flatnonzero(near.any(axis=0) & (size > 0) & (size < r) & ~skip)
    if cols.size == 0:
        return None
    R, c = red.R, red.rhs()[:, cols]
    patterns, group = _group_columns(F[:, cols])
    sizes = patterns.sum(axis=1)
    chosen = np.zeros(cols.size, dtype=np.intp)
    passed = np.zeros(cols.size, dtype=bool)
    for s in np.unique(sizes):  # batched QRs per support size, in chunks
        in_class = np.flatnonzero(sizes == s)
        for sl in _chunks(in_class.size, r * s):
            groups = in_class[sl]
            T = np.nonzero(patterns[groups])[1].reshape(-1, s)
            Q = np.linalg.qr(np.swapaxes(R[:, T], 0, 1))[0]  # (groups, r, s)
            local = np.full(len(patterns), -1)
            local[groups] = np.arange(groups.size)
            j = np.flatnonzero(local[group] >= 0)
            for part in _chunks(j.size, r * s):
                jj = j[part]
                Qj = Q[local[group[jj]]]
                w, bound, t = _projected_dual(Qj, R, c[:, jj], near[:, cols[jj]], k)
                chosen[jj], passed[jj] = t, w > bound
    if not passed.any():
        return None
    free = np.zeros((k, M), dtype=bool)
    free[chosen[passed], cols[passed]] = True
    return free


def _projected_dual(Q, R, c, near, k):
    """For columns with orthonormal bases ``Q`` (n x r x s) of their supports: the
    largest projected dual ``w_t = R_t^T c_perp`` over the topics ``near`` (k x n),
    its rounding bound, and the topic t."""
    eps = np.finfo(float).eps
    Qt = np.swapaxes(Q, 1, 2)
    v = c.T[:, :, None]
    v1 = v - Q @ (Qt @ v)
    v2 = v1 - Q @ (Qt @ v1)
    n1 = np.linalg.norm(v1[:, :, 0], axis=1)
    n2 = np.linalg.norm(v2[:, :, 0], axis=1)
    v2[n2 < n1 / np.sqrt(2)] = 0.0  # c is in the span to working precision
    cp = v2[:, :, 0].T
    w = np.where(near, R.T @ cp, -np.inf)
    t = np.argmax(w, axis=0)
    n = np.arange(t.size)
    Rt = R[:, t].T[:, :, None]  # the chosen topic's part off the support
    perp = np.linalg.norm((Rt - Q @ (Qt @ Rt))[:, :, 0], axis=1)
    norm_c = np.linalg.norm(c, axis=0)
    bound = 8 * k * eps * (np.linalg.norm(cp, axis=0) + norm_c * perp)
    return w[t, n], bound, t


def _lawson_hanson(red: _Reduced, x, F, max_iter: int, rtol: float = _RTOL, free=None):
    """The Lawson-Hanson active-set method for all given columns at once.

    Starts from the feasible part of ``x`` (a warm start). Each outer step frees, in
    every unfinished column, the variable with the most negative gradient (below
    ``-_tolerance(B, rtol)``); the inner loop solves on the passive sets and steps back
    along the segment to stay nonnegative, dropping the variables that reach zero. A
    freed variable that is dropped at once (its coefficient came out <= 0, so nothing
    changed) is not tried again in that column until another one is taken in, as in
    Lawson and Hanson's algorithm. Finite termination. Returns ``x`` and its support.
    ``free`` (k x m, optional): variables freed before the first solve.
    """
    C, B = red.C, red.B
    tol_y = _tolerance(B, rtol)
    F = F & (x > 0)
    x = np.where(F, x, 0.0)
    done = np.zeros(x.shape[1], dtype=bool)
    rejected = np.zeros_like(F)
    freed = None  # the variable freed in each column at the last outer step
    if free is not None:
        F |= free
        freed = np.where(free.any(axis=0), np.argmax(free, axis=0), -1)
    for _ in range(max_iter):
        inner = ~done
        for _ in range(x.shape[0] + 1):  # inner loop: least squares on F, kept >= 0
            cols = np.flatnonzero(inner)
            if cols.size == 0:
                break
            sub = red.take(cols)
            z, _ = _solve(sub, _factor(sub.C, F[:, cols], sub.R, sub))
            xs, Fs = x[:, cols], F[:, cols]
            bad = Fs & (z <= 0)
            ok = ~bad.any(axis=0)
            x[:, cols[ok]] = z[:, ok]
            inner[cols[ok]] = False
            if not ok.all():  # step back to the boundary, drop what reached zero
                b = ~ok
                gap = xs[:, b] - z[:, b]  # >= 0 where bad; 0 only if both are 0
                ratio = np.full(gap.shape, np.inf)
                np.divide(xs[:, b], gap, out=ratio, where=bad[:, b] & (gap > 0))
                ratio[bad[:, b] & ~(gap > 0)] = 0.0  # at zero, staying at zero
                step = ratio.min(axis=0)
                moved = xs[:, b] + step * (z[:, b] - xs[:, b])
                keep = Fs[:, b] & (moved > 0) & (ratio > step)
                x[:, cols[b]] = np.where(keep, moved, 0.0)
                F[:, cols[b]] = keep
        if freed is not None:  # a freed variable dropped at once is rejected
            cols = np.flatnonzero(freed >= 0)
            kept = F[freed[cols], cols]
            rejected[:, cols[kept]] = False
            rejected[freed[cols[~kept]], cols[~kept]] = True
        w = B - _mul(C, x)  # minus the gradient
        candidates = ~F & ~rejected & (w > tol_y)
        done |= ~candidates.any(axis=0)
        if done.all():
            break
        t = np.argmax(np.where(candidates, w, -np.inf), axis=0)
        freed = np.where(done, -1, t)
        going = np.flatnonzero(~done)
        F[t[going], going] = True
    return x, F & (x > 0)


# ----------------------------------------------------------------------------------
# Public functions


def nnls(A, X, *, W=None, support=None, max_iter: int = 100, return_info: bool = False):
    r"""Solve :math:`\min_{S \ge 0} \|X - A S\|_F` for all columns of ``X`` at once.

    Block principal pivoting (Kim & Park, 2011, Algorithm 2) with the columns grouped by
    passive set. Each sweep exchanges all infeasible variables of a column at once
    (falling back to Murty's single-variable rule when that stops reducing their
    number), and each distinct passive set costs one small factorization. The result
    is exact: it satisfies the KKT conditions

    .. math:: S \ge 0, \quad G = A^\top (A S - X) \ge 0, \quad S \odot G = 0

    to a scale-free residual (:func:`kkt_residual`) of 1e-10 or less, for any
    conditioning of ``A`` up to about 1e8 and any scale of ``A`` and ``X``. The
    least-squares problems on the passive sets are solved through the QR factorization
    of ``A`` (so the condition number is not squared) with iterative refinement, or,
    where the Gram matrix of the normalized columns of ``A`` has a condition number of
    at most 1e4, through that Gram matrix and ``A^T X`` formed directly. The KKT
    conditions of the answer are verified; columns that miss them, or whose passive set
    still changes after ``max_iter`` sweeps, are finished by the Lawson-Hanson
    active-set method.

    A small KKT residual does not by itself mean the best support in every column:
    when a topic is nearly dependent on a column's support, its dual variable can be
    smaller than the error a few units in the last place of the solution make in it.
    So on the QR path without a mask, the columns with a topic off the support whose
    dual variable is near zero are tested again with the dual projected off the
    support (Lawson and Hanson's test, which does not depend on the accuracy of the
    solution), and a topic that passes is taken in. Measured in
    ``benchmarks/bench_nnls.py`` on one family of 60 x 8 dictionaries with cond(A) from
    1e4 to 1e8 and noise of amplitude 1e-10 to 1e-3 added to data in the cone, each
    column's objective then exceeds that of ``scipy.optimize.nnls`` by no more than
    1e-10 of itself plus the rounding of the two objectives (which dominates for small
    noise).

    Parameters
    ----------
    A : array_like, shape (N, k)
        Nonnegative dictionary (topics as columns).
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data, one sample per column. Where ``W`` is 0 the entries are
        ignored and may hold anything (NaN included). A scipy.sparse matrix (CSR, CSC,
        COO) stays sparse: it enters only through :math:`A^\top X` (or :math:`Q^\top X`
        with ``A = QR``), in O(nnz(X) k) time and O(nnz(X) + (N + M) k) memory, plus
        one k x k factor per distinct passive set. A numpy masked array means
        ``W = ~X.mask``.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask: solve :math:`\min_{S\ge0} \|W \odot (X - AS)\|_F`, so that each
        column is fitted on its observed entries only. Each column then has its own
        factorization, which costs O(N M k^2) time for dense ``X``. For sparse ``X``,
        ``W`` may be dense (it is kept as the smaller of its observed and missing
        sets, P) or sparse (its stored ones are the observed entries); the factors
        then come from the per-column Gram matrices of the orthonormal factor of
        ``A``, in O(nnz(P) k^2 + M k^3) time.
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
        The minimizer, with exact zeros off its support. Where ``A`` is rank-deficient
        on the support T of a column (for example two equal topics), the minimizer is
        not unique (the fit ``A S`` is): the minimum-norm solution on T for the topics
        scaled to unit length is returned, that is the one that minimizes
        :math:`\|\operatorname{diag}(\|a_i\|)\, s_T\|`, a choice that does not
        depend on the topics' scales.
    info : NNLSInfo
        Only when ``return_info`` is true.

    Raises
    ------
    ValueError
        If ``A`` or ``X`` is not 2-D, not finite or has a negative entry, if their row
        counts differ, or if ``W`` or ``support`` has the wrong shape or non-binary
        values.

    Warns
    -----
    AccuracyWarning
        If the verified KKT residual of the answer is above 1e-10 (``A`` too
        ill-conditioned on some support for double precision).
    ConvergenceWarning
        If some columns needed the active-set fallback.
    RankDeficiencyWarning
        If ``A`` is rank-deficient on the support of some column of the answer.

    Examples
    --------
    >>> A = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> nnls(A, np.array([[2.0], [1.0], [1.0]]))
    array([[1.5],
           [1. ]])
    """
    A = as_matrix(A, "A", nonnegative=True)
    X, W = as_masked_data(X, W)
    check_same_rows(A, X)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if not isinstance(return_info, (bool, np.bool_)):
        raise TypeError(f"return_info must be True or False; got {return_info!r}.")
    if support is not None:
        support = as_mask(support, (A.shape[1], X.shape[1]), "support")
    S, solution = _nnls(A, X, W, support, max_iter)
    tally = _Tally()
    tally.add(solution.info, X.shape[1])
    for message, category in tally.warnings("nnls", max_iter):
        warn(message, category)
    return (S, solution.info) if return_info else S


@dataclass
class _Tally:
    """What many NNLS solves reported, for one warning of each kind."""

    columns: int = 0
    kkt_residual: float = 0.0
    n_fallback: int = 0
    n_rank_deficient: int = 0

    def add(self, info: NNLSInfo, n_columns: int) -> None:
        self.columns += n_columns
        self.kkt_residual = max(self.kkt_residual, info.kkt_residual)
        self.n_fallback += info.n_fallback
        self.n_rank_deficient += info.n_rank_deficient

    def warnings(self, where: str, max_iter: int = 100) -> list:
        """``(message, category)`` pairs; ``where`` names the caller and the data."""
        out = []
        of = f"{{}} of the {self.columns} columns"
        if self.kkt_residual > _KKT_TOL:
            out.append(
                (
                    f"{where}: the solution's KKT residual is {self.kkt_residual:.1e}, "
                    f"above {_KKT_TOL:g}: A is too ill-conditioned on some supports "
                    "for double precision; the best solution found was returned.",
                    AccuracyWarning,
                )
            )
        if self.n_fallback:
            out.append(
                (
                    f"{where}: {of.format(self.n_fallback)} of X were finished by the "
                    "Lawson-Hanson active-set method (block principal pivoting did not "
                    f"settle them in max_iter={max_iter} sweeps, or missed the KKT "
                    "tolerance); the result is verified, only slower.",
                    ConvergenceWarning,
                )
            )
        if self.n_rank_deficient:
            out.append(
                (
                    f"{where}: A is rank-deficient on the support of "
                    f"{of.format(self.n_rank_deficient)} of X (linearly dependent "
                    "topics): the solution is not unique there, and the minimum-norm "
                    "one on the support was returned.",
                    RankDeficiencyWarning,
                )
            )
        return out


def _kkt_terms(CtC: np.ndarray, CtB: np.ndarray, S: np.ndarray):
    """``|min(D S, G)|`` and ``max(|A^T X|, |A^T A S|)`` entrywise, with
    ``G = A^T A S - A^T X`` and ``D = diag(A^T A)``, from the Gram matrices."""
    CS = _mul(CtC, S)
    G = CS - CtB
    # D S has the units of G, so min(D S, G) compares like with like.
    D = np.diag(CtC)[:, None] if CtC.ndim == 2 else np.diagonal(CtC, 0, 1, 2).T
    return np.abs(np.minimum(D * S, G)), np.maximum(np.abs(CtB), np.abs(CS))


def _kkt(CtC: np.ndarray, CtB: np.ndarray, S: np.ndarray) -> float:
    """The KKT residual of ``S``: the largest violation over the largest scale."""
    violation, scale = _kkt_terms(CtC, CtB, S)
    top = float(scale.max())
    return 0.0 if top == 0.0 else float(violation.max() / top)


def _caller_residual(num, den, red: _Reduced) -> float:
    """The KKT residual in the caller's units from the scaled terms: entry (i, j) is
    scaled by ``m_i 2**(a_i + e_j)``, applied relative to the largest power of two so
    that nothing overflows."""
    a, e = red.a, red.e
    w = np.ldexp(red.m[:, None], a[:, None] + e[None, :] - (a.max() + e.max()))
    top = float((den * w).max())
    return 0.0 if top == 0.0 else float((num * w).max() / top)


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
    invariant to rescaling ``A`` or ``X`` (with ``S`` rescaled accordingly). It is
    computed after scaling ``A``, ``X`` and ``S`` by powers of two, so it is finite
    for all finite input, however large or small. An exact solver reaches about
    ``1e-15``.

    Parameters
    ----------
    A : array_like, shape (N, k)
    X : array_like or scipy.sparse matrix, shape (N, M)
        The data (see :func:`nnls`; sparse data stay sparse).
    S : array_like, shape (k, M)
        Candidate solution; it may have negative entries (they count as violations).
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask of the problem (see :func:`nnls`).

    Returns
    -------
    float
    """
    A = as_matrix(A, "A")
    if W is None and not isinstance(X, np.ma.MaskedArray):
        X = as_data(X, "X", nonnegative=False)
    else:
        X, W = as_masked_data(X, W)
    S = as_matrix(S, "S")
    check_same_rows(A, X)
    check_shape(S, (A.shape[1], X.shape[1]), "S", "columns of A x columns of X")
    # r is unchanged by (A, S) -> (A t, S / t) and by (X, S) -> (X t, S t): use powers
    # of two that bring every entry to at most 1.
    ea = _exponent(np.abs(A).max())
    f = max(_exponent(abs_max(X)), _exponent(np.abs(S).max()) + ea)
    A, X, S = np.ldexp(A, -ea), scale(X, f), np.ldexp(S, ea - f)
    return _kkt(*_grams(A, X, W), S)


def _grams(A: np.ndarray, X: np.ndarray, W) -> tuple[np.ndarray, np.ndarray]:
    """``A^T A`` and ``A^T X``, or with a mask the per-column ``A^T diag(w_m) A`` and
    ``A^T (W * X)`` (sparse data arrive as ``W * X``)."""
    if W is None:
        return A.T @ A, A.T @ X
    if isinstance(W, SparseMask):
        return W.grams(A), A.T @ X
    return np.einsum("nm,ni,nj->mij", W, A, A, optimize=True), A.T @ (W * X)


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
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data (see :func:`nnls`; sparse data stay sparse).
    S : array_like, shape (k, M)
        ``nnls(A, X)``; its support (``S > 0``) selects the active columns of ``A``.
    G : array_like, shape (k, M)
        Upstream gradient, the derivative of the loss with respect to ``S``.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask of the problem (see :func:`nnls`): :math:`A_T^\top A_T` becomes
        :math:`A_T^\top \operatorname{diag}(w) A_T`, and both gradients are masked,
        :math:`\partial/\partial x = w \odot A_T z` and
        :math:`\partial/\partial A_T = (w \odot r) z^\top - (w \odot A_T z) s_T^\top`.

    Returns
    -------
    dA : ndarray, shape (N, k)
    dX : ndarray or scipy.sparse CSR array, shape (N, M)
        For sparse ``X``, the derivative with respect to its stored values only (those
        of ``W * X`` with a mask): a CSR array with the pattern of ``X``, in O(nnz(X)
        k) time. The derivative with respect to its zeros is not formed (it would be
        a dense N x M matrix).

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


def _vjp_z(solution: _Solution | None, A, S, G, W=None):
    """``Z`` with ``Z_T = (A_T^T A_T)^{-1} G_T`` column by column, and the flags of the
    rank-deficient supports. Reuses the factorization of ``solution`` (from the
    forward solve) when its supports are those of ``S``."""
    F = S > 0
    red = _reduce(A, None, W) if solution is None else solution.red
    with _small_solves(F.shape[0]):
        if solution is None:
            fac = _factor(red.C, F, red.R, red)
        else:  # refactor only the columns whose support is not the forward's
            fac = solution.fac
            changed = (fac.F != F).any(axis=0)
            if changed.any():
                C, R = (
                    (red.C, red.R)
                    if red.C.ndim == 2
                    else (red.C[changed], red.R[changed])
                )
                sub = red if red.C.ndim == 2 else None
                fac = _patch(fac, _factor(C, F[:, changed], R, sub), changed)
        # One set of batched solves for the complement parts of all the sweeps.
        fac = replace(fac, parts=_merge_complements(fac.parts, F.shape[0]))
        # A = A_s D: (A_T^T A_T)^{-1} = D^-1 C_TT^{-1} D^-1.
        Z = red.unscaled(_apply(fac, red.unscaled(G, data=False)), data=False)
    return Z, fac.singular & F.any(axis=0)


def _vjp(A, X, S, G, W=None, solution=None):
    """:func:`nnls_vjp` on validated input; also returns the singular-column flags.

    ``dA = X Z^T - A (S Z^T + Z S^T)``: one product with the N x M data.
    """
    Z, singular = _vjp_z(solution, A, S, G, W)
    if is_sparse(X):  # never N x M: dX only at the stored entries
        return _vjp_dA(A, X, S, Z, W), sampled(X, A, Z), singular
    AZ = A @ Z
    if W is None:
        return times_t(X, Z) - A @ (S @ Z.T + Z @ S.T), AZ, singular
    dX = W * AZ
    return (W * (X - A @ S)) @ Z.T - dX @ S.T, dX, singular


def _vjp_dA(A, X, S, Z, W=None):
    """``dA = (W * (X - A S)) Z^T - (W * (A Z)) S^T`` for sparse ``X`` (given as
    ``W * X``) and a :class:`SparseMask` ``W`` (or None), in O((nnz(X) + nnz(P)) k)."""
    if W is None:
        return X @ Z.T - A @ (S @ Z.T + Z @ S.T)
    return X @ Z.T - W.product(A, S) @ Z.T - W.product(A, Z) @ S.T
