r"""Hierarchical NMF (hNMF): factor the data, then the coefficients, layer by layer.

With :math:`S^{(-1)} = X`, layer :math:`\ell = 0, \dots, \mathcal L` solves an
independent NMF :math:`S^{(\ell-1)} \approx A^{(\ell)} S^{(\ell)}` with
:math:`k^{(\ell)}` topics, so that

.. math:: X \approx A^{(0)} A^{(1)} \cdots A^{(\ell)} S^{(\ell)}

after each layer (the paper's equation (3)). Each layer is fitted greedily: nothing
flows back from later layers to earlier ones. Optionally the last layer is
semi-supervised (:func:`nnmf_lib.ssnmf`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._run import Deadline, check_bool, check_max_time, phase, scale_exponent, scaled
from ._validation import (
    as_data,
    as_labels,
    as_layers,
    as_masked_data,
    as_matrix,
    check_float,
    check_random_state,
    check_ranks,
)
from .metrics import _factor_error, predict_labels
from .nmf import nmf
from .nnls import nnls
from .ssnmf import ssnmf

__all__ = ["HNMFResult", "hnmf", "product"]


def product(A: list, S) -> np.ndarray:
    """The approximation ``A[0] @ A[1] @ ... @ A[-1] @ S``, multiplied from the right
    so that every product is as thin as possible.

    ``A`` is a nonempty list of finite matrices whose shapes chain and ``S`` a finite
    matrix with as many rows as ``A[-1]`` has columns (signs are not checked).
    """
    A = as_layers(A, nonnegative=False)
    S = as_matrix(S, "S")
    if S.shape[0] != A[-1].shape[1]:
        raise ValueError(
            f"S must have {A[-1].shape[1]} rows (the columns of A[{len(A) - 1}]); "
            f"got {S.shape[0]}."
        )
    return _product(A, S)


def _product(A, S):
    out = S
    for factor in reversed(A):
        out = factor @ out
    return out


@dataclass
class HNMFResult:
    """The outcome of :func:`hnmf`.

    Attributes
    ----------
    A : list of ndarray
        ``A[l]`` has shape (k_{l-1}, k_l) (``A[0]`` is N x k_0); unit-norm columns.
    S : list of ndarray
        ``S[l]`` has shape (k_l, M).
    B : ndarray or None
        Classifier of the last layer (P x k_L) when labels were given.
    errors : ndarray, shape (L + 1,)
        Relative error of ``X ≈ A[0] ... A[l] S[l]`` after each layer l.
    layers : list
        The per-layer results (:class:`NMFResult` or, for a supervised last layer,
        :class:`SSNMFResult`), with their iteration histories.
    converged : bool
        Whether every layer converged.
    stop_reason : str
        ``"tol"`` when every layer converged, else the ``stop_reason`` of the first
        layer that did not (``"max_iter"``, ``"max_time"``, ``"diverged"``).
    """

    A: list
    S: list
    B: np.ndarray | None
    errors: np.ndarray
    layers: list
    converged: bool = True
    stop_reason: str = "tol"

    def approximation(self, depth: int | None = None) -> np.ndarray:
        """``A[0] @ ... @ A[depth] @ S[depth]`` (default: the last layer)."""
        depth = len(self.A) - 1 if depth is None else depth
        return product(self.A[: depth + 1], self.S[depth])

    def transform(self, X_new) -> list:
        """Representations of new columns, layer by layer: S[l] = q(A[l], S[l-1])
        (``X_new`` may be sparse, or a masked array whose masked entries the first
        layer leaves out, as :func:`nnmf_lib.nnls` does)."""
        S = X_new if isinstance(X_new, np.ma.MaskedArray) else as_data(X_new, "X_new")
        if S.shape[0] != self.A[0].shape[0]:
            raise ValueError(
                f"X_new must have {self.A[0].shape[0]} rows (the rows of X); "
                f"got {S.shape[0]}."
            )
        out = []
        for A in self.A:
            S = nnls(A, S)
            out.append(S)
        return out

    def predict(self, X_new=None) -> np.ndarray:
        """Labels ``argmax(B S[L])`` of the training columns, or of ``X_new``."""
        if self.B is None:
            raise ValueError("predict needs a model fitted with labels Y.")
        S = self.S[-1] if X_new is None else self.transform(X_new)[-1]
        return predict_labels(self.B, S)


def hnmf(
    X,
    ranks,
    *,
    method: str = "hals",
    Y=None,
    L=None,
    lam: float = 1.0,
    W=None,
    init="nndsvda",
    max_iter: int = 1000,
    tol: float = 1e-5,
    random_state=None,
    max_time: float | None = None,
    verbose: bool = False,
) -> HNMFResult:
    r"""Hierarchical NMF: greedy NMF of the data, then of each layer's coefficients.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data, one sample per column. A sparse matrix stays sparse in the
        first layer (see :func:`nnmf_lib.nmf`); the layers above factor dense k x M
        coefficients. A numpy masked array means ``W = ~X.mask``.
    ranks : sequence of int
        Topics per layer, ``[k_0, k_1, ..., k_L]``, non-increasing, with
        ``k_0 <= min(N, M)``.
    method : {"hals", "mu", "anls"}, default "hals"
        NMF algorithm of the unsupervised layers (see :func:`nnmf_lib.nmf`).
    Y : array_like, shape (P, M), optional
        Labels. If given, the last layer is semi-supervised NMF (multiplicative
        updates) with classifier ``B``; the other layers stay unsupervised.
    L : array_like of {0, 1}, shape (P, M), optional
        Label mask (default: all labels known).
    lam : float, default 1.0
        Weight of the classification term of the last layer.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask of the first layer (missing entries of ``X``; with sparse ``X``, as
        in :func:`nnmf_lib.nmf`).
    init : str, default "nndsvda"
        Initialization of every layer (see :func:`nnmf_lib.initialize`).
    max_iter, tol :
        Stopping rule of every layer (see :func:`nnmf_lib.nmf`).
    random_state : None, int or numpy.random.Generator
        One generator drives all layers in turn: the same seed, the same result (for
        a fixed BLAS configuration).
    max_time : float, optional
        Time budget in seconds for all layers together: each layer gets what the
        layers before it left (at least one iteration). Default: no budget.
    verbose : bool, default False
        Show a progress bar (``tqdm.auto``) per layer, with the current objective.

    Returns
    -------
    HNMFResult

    Warns
    -----
    ConvergenceWarning
        For each layer that stops at ``max_iter`` or ``max_time`` before its stopping
        rule holds (the message names the layer).
    """
    X, W = as_masked_data(X, W)
    ranks = check_ranks(ranks, X)
    Y, L = as_labels(Y, L, X.shape[1])
    lam = check_float(lam, "lam")
    deadline = Deadline(check_max_time(max_time))
    options = dict(
        init=init,
        max_iter=max_iter,
        tol=tol,
        random_state=check_random_state(random_state),
        verbose=check_bool(verbose, "verbose"),
    )
    e = scale_exponent(X)  # for the errors only: each layer's fit scales its data
    A, S, layers, errors = [], [], [], []
    data, B = X, None
    for depth, k in enumerate(ranks):
        mask = W if depth == 0 else None  # later layers factor complete coefficients
        options["max_time"] = deadline.remaining()  # what the layers before left
        with phase(f"hnmf layer {depth + 1}/{len(ranks)}"):
            if Y is not None and depth == len(ranks) - 1:
                fit = ssnmf(data, k, Y, L=L, W=mask, lam=lam, **options)
                B = fit.B
            else:
                fit = nmf(data, k, method=method, W=mask, **options)
        layers.append(fit)
        A.append(fit.A)
        S.append(fit.S)
        data = fit.S
        approx = _product(A[1:], scaled(fit.S, e))
        errors.append(_factor_error(scaled(X, e), A[0], approx, W))
    reasons = [fit.stop_reason for fit in layers if fit.stop_reason != "tol"]
    return HNMFResult(
        A, S, B, np.array(errors), layers, not reasons, (reasons or ["tol"])[0]
    )
