r"""Sparse data: how a ``scipy.sparse`` matrix ``X`` enters the library.

A term-document matrix is mostly zeros: tens of thousands of terms, thousands of
documents, well under 1% of the entries nonzero. Every algorithm of the library needs
``X`` only through

- products with thin dense matrices, :math:`A^\top X` (k x M) and :math:`X S^\top`
  (N x k), which a sparse matrix computes in O(nnz(X) k) time;
- its squared norm, and the Gram identity
  :math:`\|X - AS\|_F^2 = \|X\|_F^2 - 2\langle A^\top X, S\rangle
  + \langle A^\top A, S S^\top\rangle` for the norm of a residual;
- entries of a product :math:`AS` at a sparse set of positions (:func:`sample`).

So a sparse ``X`` is never turned into an N x M array, and the memory of every function
stays O(nnz(X) + (N + M) k) (plus O(M k^2) for the per-column Gram matrices of a masked
least-squares problem).

**Data masks.** With sparse data, a mask ``W`` (1 where ``X`` is observed) is kept as a
:class:`SparseMask`: the set of entries on its smaller side, as a sparse 0/1 pattern
``P``. When at most half of the entries are observed, ``W = P`` (the observed entries);
otherwise ``W = 1 - P`` (the missing ones). Either way

.. math:: W \odot (A S) = c\, A S + s\, P \odot (A S), \qquad
          (c, s) = (0, 1) \text{ or } (1, -1),

a low-rank term plus a sparse one, whose products with thin matrices cost
O(nnz(P) k + (N + M) k^2): :meth:`SparseMask.product`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["LowRankPlusSparse", "SparseMask", "is_sparse"]

# Entries gathered at once by sample(): bounds its temporaries to about 1 MB.
_GATHER = 1 << 16
# sample() reads positions that fill at least 1/_DENSE_SAMPLE of the matrix from
# blocks of the product (measured: 2.3 times faster than gathering at 1/10).
_DENSE_SAMPLE = 20


def is_sparse(X) -> bool:
    """Whether ``X`` is a scipy.sparse matrix or array."""
    return sp.issparse(X)


def csr(data, indices, indptr, shape) -> sp.csr_array:
    """A CSR array from its three arrays (no copy, no check)."""
    return sp.csr_array((data, indices, indptr), shape=shape)


def coordinates(X) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every stored entry of a CSR or CSC matrix, in storage order
    (row-major for a canonical CSR matrix)."""
    major = np.repeat(np.arange(X.shape[X.format == "csc"]), np.diff(X.indptr))
    return (major, X.indices) if X.format == "csr" else (X.indices, major)


def axis_max(X, axis: int) -> np.ndarray:
    """``X.max(axis=axis)`` of nonnegative data as a 1-D array (dense or sparse)."""
    if not sp.issparse(X):
        return X.max(axis=axis)
    out = np.zeros(X.shape[1 - axis])
    np.maximum.at(out, coordinates(X)[1 - axis], X.data)
    return out


def abs_max(X) -> float:
    """The largest absolute entry (0 for an all-zero matrix)."""
    values = X.data if sp.issparse(X) else X
    return float(np.abs(values).max()) if values.size else 0.0


def sq_norm(X) -> float:
    r""":math:`\|X\|_F^2`."""
    if sp.issparse(X):
        return float(np.dot(X.data, X.data))
    return float(np.vdot(X, X))


def with_data(X, data):
    """A CSR or CSC array with the pattern of ``X`` and new stored values."""
    kind = sp.csr_array if X.format == "csr" else sp.csc_array
    return kind((data, X.indices, X.indptr), shape=X.shape)


def times_t(X, H) -> np.ndarray:
    """``X @ H.T`` for data ``X`` (N x M, dense or sparse) and a small ``H`` (k x M).

    Dense ``X`` is multiplied as ``(H @ X.T).T``: the same arithmetic, which OpenBLAS
    ran 1.2 to 2.2 times faster than ``X @ H.T`` for either memory order of ``X``
    (N, M from 500 to 10000, k from 5 to 50; measured while writing this, one thread).
    """
    return X @ H.T if sp.issparse(X) else (H @ X.T).T


def scale_columns(X, e) -> np.ndarray:
    """``X * 2**-e`` with one exponent per column (exact: powers of two)."""
    if not sp.issparse(X):
        return np.ldexp(X, -e)
    return with_data(X, np.ldexp(X.data, -e[coordinates(X)[1]]))


def scale(X, f: int):
    """``X * 2**-f`` (exact)."""
    return with_data(X, np.ldexp(X.data, -f)) if sp.issparse(X) else np.ldexp(X, -f)


def sample(A, S, rows, cols) -> np.ndarray:
    """The entries ``(A @ S)[rows, cols]`` (``rows`` in increasing order) without
    forming ``A @ S``, with temporaries of about 1 MB.

    Sparse positions: O(len(rows) k) time, gathering rows of ``A`` and columns of ``S``
    in chunks. Positions that fill at least 1/20 of the matrix (a held-out tenth of
    the entries, say): products of a few rows of ``A`` with ``S`` at a time, from which
    the entries are read; that is O(N M k) time but in matrix products, which here are
    faster than gathering.
    """
    (N, k), M = A.shape, S.shape[1]
    out = np.empty(len(rows))
    if len(rows) * _DENSE_SAMPLE >= N * M:
        block = max(1, _GATHER // M)
        starts = np.searchsorted(rows, np.arange(0, N + block, block))
        for b, r0 in enumerate(range(0, N, block)):  # blocks of rows, not columns
            lo, hi = starts[b], starts[b + 1]
            if hi > lo:
                out[lo:hi] = (A[r0 : r0 + block] @ S)[rows[lo:hi] - r0, cols[lo:hi]]
        return out
    At, St = np.ascontiguousarray(A), np.ascontiguousarray(S.T)
    step = max(1, _GATHER // max(k, 1))
    for i in range(0, len(rows), step):  # chunks of entries, not columns
        r, c = rows[i : i + step], cols[i : i + step]
        out[i : i + step] = np.einsum("ij,ij->i", At[r], St[c])
    return out


def sampled(X, A, S):
    """``(A @ S)`` at the stored entries of the sparse ``X``, as a sparse matrix with
    the pattern of ``X`` (the gradient with respect to the stored values of X)."""
    return with_data(X, sample(A, S, *coordinates(X)))


def residual_norm2(X, A, S, W=None, norm_x2=None, cross=None) -> float:
    r""":math:`\|W \odot (X - AS)\|_F^2` for sparse ``X`` (given as ``W * X``) and a
    :class:`SparseMask` ``W`` or None, without the N x M residual.

    From the Gram identity :math:`\|X\|^2 - 2\langle A^\top X, S\rangle +
    \langle A^\top A, SS^\top\rangle` (O((N + M) k^2) once the cross term
    :math:`\langle A^\top X, S\rangle` is known), minus the sum of :math:`(AS)^2` over
    the missing entries for a mask stored by them; clipped at 0. The difference loses
    the digits below about 1e-16 times :math:`\|X\|^2`, so relative errors below
    about 1e-7 are not resolved. A mask stored by its observed entries sums the
    residual on them directly, which is exact however close the fit.
    """
    if W is not None and W.observed:
        r = W.values_at(X) - W.sample(A, S)
        return float(np.dot(r, r))
    norm_x2 = sq_norm(X) if norm_x2 is None else norm_x2
    cross = float(np.vdot(A.T @ X, S)) if cross is None else cross
    f = norm_x2 - 2.0 * cross + float(np.vdot(A.T @ A, S @ S.T))
    if W is not None:
        f -= float(np.sum(W.sample(A, S) ** 2))
    return max(f, 0.0)


def distance2(X, D) -> float:
    r""":math:`\|X - D\|_F^2` for sparse ``X`` and a dense N x M ``D``, exactly (the
    residual formed a few columns at a time: O(nnz(X) + N + M) extra memory)."""
    Xc = X.tocsc()
    N, M = X.shape
    width = max(1, min(M, (X.nnz + N + M) // N))
    total = 0.0
    for j in range(0, M, width):  # chunks of columns bound the memory
        stop = min(j + width, M)
        R = np.array(D[:, j:stop], dtype=float)
        lo, hi = Xc.indptr[j], Xc.indptr[stop]
        cols = np.repeat(np.arange(stop - j), np.diff(Xc.indptr[j : stop + 1]))
        R[Xc.indices[lo:hi], cols] -= Xc.data[lo:hi]
        total += float(np.vdot(R, R))
    return total


# ----------------------------------------------------------------------------------
# Data masks


class LowRankPlusSparse:
    r"""The N x M matrix :math:`c\, A S + D` (``c`` a number, ``D`` sparse) as an
    operator: multiplied by thin matrices on either side (``op @ Z`` and ``B @ op``)
    without being formed. :meth:`SparseMask.product` returns
    :math:`W \odot (A S)` in this form."""

    __array_ufunc__ = None  # so that ``ndarray @ op`` calls op.__rmatmul__

    def __init__(self, c: float, A, S, D):
        self.c, self.A, self.S, self.D = c, A, S, D

    def __matmul__(self, Z):
        out = self.D @ Z
        return out + self.c * (self.A @ (self.S @ Z)) if self.c else out

    def __rmatmul__(self, B):
        out = B @ self.D
        return out + self.c * ((B @ self.A) @ self.S) if self.c else out

    def residual(self, X) -> LowRankPlusSparse:
        """``X - self`` for sparse ``X``."""
        return LowRankPlusSparse(-self.c, self.A, self.S, X - self.D)


@dataclass
class SparseMask:
    """A data mask for sparse data, stored as its smaller side.

    ``P`` is a CSR 0/1 pattern with canonical (sorted, unique) entries at ``rows``,
    ``cols``. If ``observed``, the mask is ``W = P``; otherwise ``W = 1 - P``.
    """

    P: sp.csr_array
    observed: bool
    rows: np.ndarray = field(repr=False)
    cols: np.ndarray = field(repr=False)
    _keys: np.ndarray | None = field(default=None, repr=False)
    _values: tuple | None = field(default=None, repr=False)
    _sample: tuple | None = field(default=None, repr=False)

    @classmethod
    def from_pattern(cls, rows, cols, shape, observed: bool) -> SparseMask:
        """From the positions of the stored side, in row-major order."""
        index = np.int32 if max(shape) < 2**31 else np.int64  # as scipy's own
        rows, cols = rows.astype(index, copy=False), cols.astype(index, copy=False)
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        P = csr(np.ones(len(rows)), cols, indptr, shape)  # shares cols
        return cls(P, observed, rows, cols)

    @classmethod
    def from_dense(cls, W) -> SparseMask:
        """From a boolean N x M array: the smaller of its two sides."""
        observed = np.count_nonzero(W) <= W.size / 2
        rows, cols = np.nonzero(W if observed else ~W)  # row-major
        return cls.from_pattern(rows, cols, W.shape, observed)

    @property
    def shape(self) -> tuple[int, int]:
        return self.P.shape

    def _find(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """For each entry ``(rows[i], cols[i])``: whether it is in P, and where."""
        if self._keys is None:  # row-major positions: sorted, as P is canonical
            self._keys = self.rows.astype(np.int64) * self.shape[1] + self.cols
        keys = self._keys
        wanted = np.asarray(rows, dtype=np.int64) * self.shape[1] + cols
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        hit = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), bool)
        return hit, at

    def observed_at(self, rows, cols) -> np.ndarray:
        """Whether each entry ``(rows[i], cols[i])`` is observed."""
        hit = self._find(rows, cols)[0]
        return hit if self.observed else ~hit

    def values_at(self, X) -> np.ndarray:
        """The entries of the sparse ``X`` at the positions of P, in P's order (0
        where X stores nothing); remembered for the last ``X``."""
        if self._values is None or self._values[0] is not X:
            hit, at = self._find(*coordinates(X))
            out = np.zeros(len(self.rows))
            out[at[hit]] = X.data[hit]
            self._values = (X, out)
        return self._values[1]

    def restrict(self, X):
        """``W * X`` for sparse ``X``: its stored entries that are observed."""
        rows, cols = coordinates(X)  # X is canonical CSR
        keep = self.observed_at(rows, cols)
        if keep.all():
            return X
        indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=X.shape[0]), out=indptr[1:])
        return csr(X.data[keep], X.indices[keep], indptr, X.shape)

    def sample(self, A, S) -> np.ndarray:
        """``(A @ S)`` at the positions of P, in P's order. The last product is
        remembered (with copies of its factors): multiplicative updates ask for the
        same one twice, for the objective and then for the next update."""
        last = self._sample
        if (
            last is not None
            and last[0].shape == A.shape
            and last[1].shape == S.shape
            and np.array_equal(last[0], A)
            and np.array_equal(last[1], S)
        ):
            return last[2]
        values = sample(A, S, self.rows, self.cols)
        self._sample = (A.copy(), S.copy(), values)
        return values

    def on_pattern(self, values):
        """The sparse matrix with pattern ``P`` and the given values (in order)."""
        return csr(values, self.P.indices, self.P.indptr, self.shape)

    def product(self, A, S) -> LowRankPlusSparse:
        """:math:`W \\odot (A S)` as an operator (O(nnz(P) k) to build)."""
        values = self.sample(A, S)
        if self.observed:
            return LowRankPlusSparse(0.0, A, S, self.on_pattern(values))
        return LowRankPlusSparse(1.0, A, S, self.on_pattern(-values))

    def grams(self, A) -> np.ndarray:
        """The per-column Gram matrices :math:`A^\\top \\operatorname{diag}(w_m) A`,
        an M x k x k stack, in O(nnz(P) k^2) time."""
        k, PT = A.shape[1], self.P.T
        G = np.empty((self.shape[1], k, k))
        for i in range(k):  # a loop over the topics: sum over the rows of P_m
            G[:, :, i] = PT @ (A * A[:, i : i + 1])
        if not self.observed:
            G = (A.T @ A)[None] - G
        return G
