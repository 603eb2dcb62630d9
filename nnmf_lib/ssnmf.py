r"""Semi-supervised NMF (Lee, Yoo & Choi, 2010): the paper's equation (2),

.. math::
    \min_{A, B, S \ge 0}\ \|W \odot (X - A S)\|_F^2
    + \lambda \|L \odot (Y - B S)\|_F^2 ,

where ``Y`` (P x M) holds one-hot labels, the label mask ``L`` (P x M) is 1 in the
columns whose label is known, the data mask ``W`` (N x M) is 1 where ``X`` is observed,
and ``B`` (P x k) maps a representation to class scores. Sample ``m`` is predicted to
have the label :math:`\operatorname{argmax}_p (B S)_{p m}`.
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
    scale_exponent,
    scaled,
    scaled_weight,
)
from ._sparse import is_sparse, sq_norm
from ._validation import (
    as_data,
    as_labels,
    as_masked_data,
    as_matrix,
    check_float,
    check_int,
    check_random_state,
    check_rank,
    check_shape,
)
from .metrics import predict_labels
from .nmf import (
    EPS,
    TINY,
    _mu_terms_S,
    _mu_update_A,
    _objective,
    _start,
    _verdict,
    stopped,
)
from .nnls import nnls

__all__ = ["SSNMFResult", "label_mask", "one_hot", "ssnmf"]


def one_hot(labels, n_classes: int | None = None) -> np.ndarray:
    """The P x M one-hot matrix ``Y`` of integer labels ``0 .. P-1``, one per sample.

    Parameters
    ----------
    labels : array_like of int, shape (M,)
        Class of every sample, ``>= 0``.
    n_classes : int, optional
        P, at least 1 and more than the largest label. Default: the largest label
        plus one (required when ``labels`` is empty).

    Examples
    --------
    >>> one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (
        np.issubdtype(labels.dtype, np.integer) or labels.size == 0
    ):
        raise ValueError(
            f"labels must be a 1-D array of integers; got shape {labels.shape}, "
            f"dtype {labels.dtype}."
        )
    labels = labels.astype(np.intp, copy=False)
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be >= 0; found {labels.min()}.")
    if n_classes is None:
        if labels.size == 0:
            raise ValueError("n_classes is required when labels is empty.")
        P = int(labels.max()) + 1
    else:
        P = check_int(n_classes, "n_classes", minimum=1)
    if labels.size and labels.max() >= P:
        raise ValueError(
            f"labels must be < n_classes = {P}; found {labels.max()}: n_classes is "
            f"too small for the labels, pass n_classes >= {labels.max() + 1}."
        )
    Y = np.zeros((P, labels.size))
    Y[labels, np.arange(labels.size)] = 1.0
    return Y


def label_mask(known, n_classes: int) -> np.ndarray:
    """The P x M label mask ``L``: column m is all ones if ``known[m]``, else zeros.

    ``known`` is a 1-D boolean array (one entry per sample); ``n_classes`` >= 1.
    """
    n_classes = check_int(n_classes, "n_classes", minimum=1)
    known = np.asarray(known)
    if known.ndim != 1 or known.dtype != bool:
        raise ValueError(
            f"known must be a 1-D boolean array; got shape {known.shape}, "
            f"dtype {known.dtype}."
        )
    return np.repeat(known[None, :].astype(float), n_classes, axis=0)


@dataclass
class SSNMFResult:
    """The outcome of :func:`ssnmf`.

    Attributes
    ----------
    A : ndarray, shape (N, k)
        Topics as columns (unit Euclidean norm).
    S : ndarray, shape (k, M)
        Representation of the training columns.
    B : ndarray, shape (P, k)
        Classifier: ``B @ S`` gives class scores.
    n_iter : int
    objective : ndarray, shape (n_iter + 1,)
        The objective of equation (2) at the start and after every iteration.
    reconstruction : ndarray, shape (n_iter + 1,)
        Its first term, :math:`\\|W \\odot (X - AS)\\|_F^2`.
    elapsed : ndarray, shape (n_iter + 1,)
        Seconds since the start of the iterations.
    converged : bool
    stop_reason : str
        ``"tol"`` (converged), ``"max_iter"``, ``"max_time"`` or ``"diverged"`` (as
        in :class:`nnmf_lib.NMFResult`).
    """

    A: np.ndarray
    S: np.ndarray
    B: np.ndarray
    n_iter: int
    objective: np.ndarray = field(repr=False)
    reconstruction: np.ndarray = field(repr=False)
    elapsed: np.ndarray = field(repr=False)
    converged: bool
    stop_reason: str = "tol"

    def transform(self, X_new) -> np.ndarray:
        """Representation of new columns: :math:`S_{new} = q(A, X_{new})` by NNLS
        (``X_new`` may be sparse, or a masked array whose masked entries are left out,
        as by :func:`nnmf_lib.nnls`)."""
        if not isinstance(X_new, np.ma.MaskedArray):
            X_new = as_data(X_new, "X_new")
        if X_new.shape[0] != self.A.shape[0]:
            raise ValueError(
                f"X_new must have {self.A.shape[0]} rows (the rows of X); "
                f"got {X_new.shape[0]}."
            )
        return nnls(self.A, X_new)

    def predict(self, X_new=None) -> np.ndarray:
        """Predicted labels: argmax of ``B @ S`` for the training columns, or of
        ``B @ q(A, X_new)`` for new columns."""
        S = self.S if X_new is None else self.transform(X_new)
        return predict_labels(self.B, S)


def _step(X, WX, LY, A, B, S, W, L, lam, norm_x2):
    """One pass of the Lee-Yoo-Choi multiplicative updates: A, then B, then S.

    Returns the new factors and the two terms of the objective.
    """
    A = _mu_update_A(WX, A, S, W)
    B = _mu_update_A(LY, B, S, L)  # B is fitted to Y exactly as A is fitted to X
    numerator, denominator = _mu_terms_S(WX, A, S, W)
    numerator = numerator + lam * (B.T @ LY)
    denominator = denominator + lam * (B.T @ (L * (B @ S)))
    S = np.maximum(EPS, S * numerator / np.maximum(denominator, TINY))
    E = L * (B @ S) - LY
    return A, B, S, _objective(X, A, S, W, norm_x2), float(np.vdot(E, E))


def ssnmf(
    X,
    k: int,
    Y,
    *,
    L=None,
    W=None,
    lam: float = 1.0,
    init="nndsvda",
    B0=None,
    max_iter: int = 1000,
    tol: float = 1e-5,
    random_state=None,
    max_time: float | None = None,
    verbose: bool = False,
) -> SSNMFResult:
    r"""Semi-supervised NMF by multiplicative updates (paper equation (2)).

    The updates are those of Lee, Yoo & Choi (2010) with masks, in the order A, B, S:

    .. math::
        A &\leftarrow A \odot \frac{(W\odot X) S^\top}{(W \odot AS) S^\top}, \qquad
        B \leftarrow B \odot \frac{(L\odot Y) S^\top}{(L \odot BS) S^\top}, \\
        S &\leftarrow S \odot \frac{A^\top (W\odot X) + \lambda B^\top (L \odot Y)}
                                  {A^\top (W\odot AS) + \lambda B^\top (L\odot BS)} ,

    each followed by a floor at 1e-16, so that no entry locks at zero. Each update
    does not increase the objective. With ``lam = 0`` the iterates of ``A`` and ``S``
    are exactly those of ``nmf(X, k, method="mu")`` from the same start.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data, one sample per column. A sparse matrix stays sparse (see
        :func:`nnmf_lib.nmf`); a numpy masked array means ``W = ~X.mask``.
    k : int
        Number of topics.
    Y : array_like, shape (P, M)
        Nonnegative label matrix, usually one-hot (see :func:`one_hot`). Columns whose
        label is unknown may hold anything finite; they are masked by ``L``.
    L : array_like of {0, 1}, shape (P, M), optional
        Label mask (see :func:`label_mask`). Default: every label is known.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask, 1 where ``X`` is observed. Default: everything is observed. With
        sparse ``X``, as in :func:`nnmf_lib.nmf`.
    lam : float, default 1.0
        Weight of the classification term, ``>= 0``.
    init : {"nndsvda", "nndsvd", "nndsvdar", "random"} or tuple (A0, S0)
        Initialization of ``A`` and ``S``, as in :func:`nnmf_lib.nmf`.
    B0 : array_like, shape (P, k), optional
        Initial classifier. Default: random :math:`|N(0, 1)|` entries, scaled so that
        ``B0 @ S0`` has about 0.8 times (:math:`\sqrt{2/\pi}`) the mean of the known
        labels.
    max_iter : int, default 1000
    tol : float, default 1e-5
        Stop when the objective decreased by less than ``tol`` (relative) over the
        last 10 iterations.
    random_state : None, int or numpy.random.Generator
        The same seed gives the same result for a fixed BLAS configuration.
    max_time : float, optional
        Time budget in seconds (see :func:`nnmf_lib.nmf`). Default: no budget.
    verbose : bool, default False
        Show a progress bar (``tqdm.auto``) with the current objective.

    Returns
    -------
    SSNMFResult

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` or ``max_time`` is reached before the stopping rule holds,
        or when it holds at a relative reconstruction error above 1.

    Notes
    -----
    Data outside :math:`[2^{-40}, 2^{40}]` are scaled as in :func:`nnmf_lib.nmf`,
    with ``lam`` scaled to keep the same problem; ``objective`` is in the units of
    :math:`X^2`.
    """
    X, W = as_masked_data(X, W)
    k = check_rank(k, X)
    Y, L = as_labels(Y, L, X.shape[1], required=True)
    lam = check_float(lam, "lam")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol")
    max_time = check_max_time(max_time)
    verbose = check_bool(verbose, "verbose")
    rng = check_random_state(random_state)
    # Work on X / 2^e; the same problem needs S / 2^e, B 2^e and lam / 4^e.
    e = scale_exponent(X)
    X, lam = scaled(X, e), scaled_weight(lam, e)
    A, S = _start(X, k, init, rng, "mu", e)
    B = _start_classifier(B0, Y, L, S, k, rng, e)
    A, B, S, history, reconstruction, elapsed, reason = _iterate(
        X, Y, A, B, S, W, L, lam, max_iter, tol, Deadline(max_time), verbose
    )
    WX = X if W is None or is_sparse(X) else W * X
    relative = float(np.sqrt(reconstruction[-1] / max(sq_norm(WX), TINY)))
    reason = _verdict("ssnmf", reason, relative, max_iter, max_time, tol)
    # Unit-norm topics; the scales move into S, and B absorbs their inverse.
    norms = np.linalg.norm(A, axis=0)
    d = np.where(norms > 0, norms, 1.0)
    with np.errstate(over="ignore", under="ignore"):  # documented: X^2 may overflow
        history, reconstruction = (
            np.ldexp(h, 2 * e) for h in (history, reconstruction)
        )
    return SSNMFResult(
        A=A / d,
        S=np.ldexp(S * d[:, None], e),
        B=np.ldexp(B / d, -e),
        n_iter=len(history) - 1,
        objective=history,
        reconstruction=reconstruction,
        elapsed=np.array(elapsed),
        converged=reason == "tol",
        stop_reason=reason,
    )


def _start_classifier(B0, Y, L, S, k, rng, e):
    """The starting classifier: ``B0`` (times 2^e, for data divided by 2^e), or
    random, about the size that makes ``B @ S`` the size of the known labels."""
    if B0 is None:
        known = L.any(axis=0)
        target = float((L * Y).sum() / max(L.sum(), 1.0)) if known.any() else 1.0
        scale = target / max(k * float(S.mean()), TINY)
        return np.maximum(EPS, scale * np.abs(rng.standard_normal((Y.shape[0], k))))
    B = as_matrix(B0, "B0", nonnegative=True)
    check_shape(B, (Y.shape[0], k), "B0", "classes x k")
    return np.maximum(EPS, np.ldexp(B, e))


def _iterate(X, Y, A, B, S, W, L, lam, max_iter, tol, deadline, verbose):
    """The multiplicative updates of :func:`ssnmf` on validated (scaled) data."""
    WX = X if W is None or is_sparse(X) else W * X  # sparse X arrives as W * X
    LY = L * Y
    norm_x2 = sq_norm(WX)
    recon = _objective(X, A, S, W, norm_x2)
    E = L * (B @ S) - LY
    history, reconstruction = [recon + lam * float(np.vdot(E, E))], [recon]
    elapsed, reason = [0.0], "max_iter"
    progress = Progress(verbose, max_iter, "ssnmf")
    for _ in range(max_iter):
        A, B, S, recon, classification = _step(X, WX, LY, A, B, S, W, L, lam, norm_x2)
        history.append(recon + lam * classification)
        reconstruction.append(recon)
        elapsed.append(time.perf_counter() - deadline.start)
        progress.update(history[-1])
        if stopped(history, tol):
            reason = "tol"
            break
        if deadline.expired():
            reason = "max_time"
            break
    progress.close()
    return A, B, S, np.array(history), np.array(reconstruction), elapsed, reason
