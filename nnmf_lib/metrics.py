"""Evaluation: relative reconstruction error, label prediction and accuracy."""

from __future__ import annotations

import numpy as np

from ._validation import as_mask, as_matrix, check_shape

__all__ = ["accuracy", "predict_labels", "relative_error"]


def relative_error(X, approximation, W=None) -> float:
    r"""Relative reconstruction error :math:`\|W \odot (X - \hat X)\| / \|W \odot X\|`.

    Parameters
    ----------
    X : array_like, shape (N, M)
        The data.
    approximation : array_like, shape (N, M)
        Its approximation, for example ``A @ S`` or ``A[0] @ A[1] @ S[1]``.
    W : array_like of {0, 1}, shape (N, M), optional
        Restrict the error to the entries where ``W`` is 1.

    Returns
    -------
    float
        0 for a perfect fit; 1 for the zero approximation. If ``W * X`` is 0 (all-zero
        data), 0 when the approximation is 0 there too, and ``inf`` otherwise.
    """
    X = as_matrix(X, "X")
    approximation = as_matrix(approximation, "approximation")
    check_shape(approximation, X.shape, "approximation", "the shape of X")
    R = X - approximation
    if W is not None:
        mask = as_mask(W, X.shape, "W")
        R, X = R * mask, X * mask
    norm_x = np.linalg.norm(X)
    return _ratio(np.linalg.norm(R), norm_x)


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
