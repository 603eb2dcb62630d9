"""Evaluation: relative reconstruction error, label prediction and accuracy."""

from __future__ import annotations

import numpy as np

from ._run import scale_exponent, scaled
from ._sparse import distance2, is_sparse, residual_norm2, sq_norm
from ._validation import as_data, as_mask, as_matrix, check_shape, sparse_mask, unmask

__all__ = ["accuracy", "predict_labels", "relative_error"]


def relative_error(X, approximation, W=None) -> float:
    r"""Relative reconstruction error :math:`\|W \odot (X - \hat X)\| / \|W \odot X\|`.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        The data. A sparse matrix stays sparse: the residual is formed a few columns
        at a time (exact, O(nnz(X) + N + M) extra memory), or, when the approximation
        is sparse too, as a sparse difference. A numpy masked array means
        ``W = ~X.mask``.
    approximation : array_like or scipy.sparse matrix, shape (N, M)
        Its approximation, for example ``A @ S`` or ``A[0] @ A[1] @ S[1]``.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Restrict the error to the entries where ``W`` is 1 (with sparse ``X``, a
        sparse ``W`` lists the observed entries).

    Returns
    -------
    float
        0 for a perfect fit; 1 for the zero approximation. If ``W * X`` is 0 (all-zero
        data), 0 when the approximation is 0 there too, and ``inf`` otherwise.
    """
    if isinstance(X, np.ma.MaskedArray):
        X, W = unmask(X, W)
        X = np.where(W, X, 0.0) if W is not None else X  # masked entries may be NaN
    X = as_data(X, "X", nonnegative=False)
    # The ratio does not change when both are divided by 2^e; far from 1 their
    # squares would overflow or underflow (data from 1e-250 to 1e250 are accepted).
    e = scale_exponent(X)
    if e:
        X = scaled(X, e)
        approximation = as_data(approximation, "approximation", nonnegative=False)
        approximation = scaled(approximation, e)
    if is_sparse(X):
        return _sparse_relative_error(X, approximation, W)
    approximation = as_matrix(approximation, "approximation")
    check_shape(approximation, X.shape, "approximation", "the shape of X")
    R = X - approximation
    if W is not None:
        mask = as_mask(W, X.shape, "W")
        R, X = R * mask, X * mask
    norm_x = np.linalg.norm(X)
    return _ratio(np.linalg.norm(R), norm_x)


def _sparse_relative_error(X, approximation, W) -> float:
    """:func:`relative_error` for sparse ``X`` (validated), never N x M beyond the
    approximation itself."""
    mask = None if W is None else sparse_mask(W, X.shape)
    X = X if mask is None else mask.restrict(X)
    if is_sparse(approximation):
        D = as_data(approximation, "approximation", nonnegative=False)
        check_shape(D, X.shape, "approximation", "the shape of X")
        R = X - D
        R = R if mask is None else mask.restrict(R.tocsr())
        return _ratio(np.sqrt(sq_norm(R)), np.sqrt(sq_norm(X)))
    D = as_matrix(approximation, "approximation")
    check_shape(D, X.shape, "approximation", "the shape of X")
    if mask is not None and mask.observed:  # only the entries of the pattern count
        r = mask.values_at(X) - D[mask.rows, mask.cols]
        norm_r2 = float(np.dot(r, r))
    else:  # all entries, minus the missing ones (where X is 0)
        norm_r2 = distance2(X, D)
        if mask is not None:
            norm_r2 = max(norm_r2 - float(np.sum(D[mask.rows, mask.cols] ** 2)), 0.0)
    return _ratio(np.sqrt(norm_r2), np.sqrt(sq_norm(X)))


def _factor_error(X, A, S, W=None) -> float:
    """``relative_error(X, A @ S, W)`` for data validated as by
    :func:`~nnmf_lib._validation.as_masked_data` (sparse data as ``W * X``); for sparse
    data without forming ``A @ S`` (Gram identity, see ``nnmf_lib._sparse``)."""
    if not is_sparse(X):
        return relative_error(X, A @ S, W)
    norm_x2 = sq_norm(X)
    return _ratio(np.sqrt(residual_norm2(X, A, S, W, norm_x2)), np.sqrt(norm_x2))


def _ratio(norm_r: float, norm_x: float) -> float:
    """``norm_r / norm_x``, with all-zero data: 0 for a zero residual, else inf."""
    if norm_x == 0:
        return 0.0 if norm_r == 0 else float("inf")
    return float(norm_r / norm_x)


def predict_labels(B, S) -> np.ndarray:
    r"""The paper's rule: sample m gets the label :math:`\arg\max_p (BS)_{pm}`.

    Parameters
    ----------
    B : array_like, shape (P, k)
    S : array_like, shape (k, M)

    Returns
    -------
    ndarray of int, shape (M,)
    """
    B = as_matrix(B, "B")
    S = as_matrix(S, "S")
    if B.shape[1] != S.shape[0]:
        raise ValueError(
            f"B has {B.shape[1]} columns but S has {S.shape[0]} rows; they must agree."
        )
    return np.argmax(B @ S, axis=0)


def accuracy(labels_true, labels_pred, mask=None) -> float:
    """Fraction of correct labels, over all samples or where ``mask`` is true.

    Parameters
    ----------
    labels_true, labels_pred : array_like of int, shape (M,)
    mask : array_like of bool, shape (M,), optional
        Score only these samples, for example the ones whose label was unknown.
    """
    labels_true = np.asarray(labels_true)
    labels_pred = np.asarray(labels_pred)
    if labels_true.ndim != 1 or labels_true.shape != labels_pred.shape:
        raise ValueError(
            "labels_true and labels_pred must be 1-D arrays of the same length; "
            f"got shapes {labels_true.shape} and {labels_pred.shape}."
        )
    correct = labels_true == labels_pred
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != labels_true.shape or mask.dtype != bool:
            raise ValueError(
                f"mask must be a boolean array of shape {labels_true.shape}; "
                f"got {mask.dtype} of shape {mask.shape}."
            )
        correct = correct[mask]
    if correct.size == 0:
        raise ValueError("accuracy of an empty set of samples is undefined.")
    return float(correct.mean())
