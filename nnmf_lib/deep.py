r"""Deep NMF (Flenner & Hunter): hierarchical NMF with max-pooling between the layers,
refined by multiplicative updates that couple each layer to the next.

The model has layers :math:`\ell = 0, \dots, \mathcal L` with inputs
:math:`X^{(0)} = X` and :math:`X^{(\ell+1)} = p(S^{(\ell)})`, where the pooling
:math:`p` replaces every coefficient by the largest one in a window of neighbouring
samples. The refinement decreases, one block at a time, the energy

.. math::
    E = \sum_{\ell=0}^{\mathcal L} \|X^{(\ell)} - A^{(\ell)} S^{(\ell)}\|_F^2
        + \lambda \|L \odot (Y - B S^{(\mathcal L)})\|_F^2 .

Choices made here where the sources are ambiguous or wrong (see the Deep NMF chapter):

- the pooling window is symmetric, ``{j - r, ..., j + r}``, clipped to the sample's
  segment (the original C++ code uses ``{j - r, ..., j + r - 1}``); on ties the
  sample itself wins when it is among the maxima (an all-zero window keeps it),
  otherwise the leftmost of the maxima;
- by default all samples form one segment; pass ``segments`` when the samples come in
  separate sequences (recordings, documents) that pooling must not cross;
- the forward pass fits each layer with :func:`nnmf_lib.nmf` (and the last one with
  :func:`nnmf_lib.ssnmf` when labels are given), so the classifier is fitted, not
  random, before the refinement starts;
- the classifier's update uses only the known labels (masked by ``L``).

With ``radius = 0`` pooling is the identity and the refinement is exactly the
multiplicative-update method for ``E`` without pooling, which never increases ``E``.
With pooling, the positions of the maxima can change between sweeps, and ``E`` is then
not guaranteed to decrease.
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
    phase,
    scale_exponent,
    scaled,
    scaled_weight,
    unconverged_message,
)
from ._sparse import is_sparse, residual_norm2
from ._validation import (
    ConvergenceWarning,
    FitWarning,
    as_data,
    as_integer_array,
    as_labels,
    as_matrix,
    check_float,
    check_int,
    check_random_state,
    check_ranks,
    warn,
)
from .hierarchical import _product, product
from .metrics import _factor_error, predict_labels
from .nmf import EPS, TINY, _mu_update_A, nmf, stopped
from .ssnmf import ssnmf

__all__ = ["DeepNMFResult", "deep_nmf", "pool", "unpool"]


def pool(S, radius: int, segments=None) -> tuple[np.ndarray, np.ndarray]:
    """Max-pooling of every row of ``S`` over windows of neighbouring columns.

    ``p(S)[i, j] = max S[i, j']`` over ``j' in {j - radius, ..., j + radius}`` within
    the segment of ``j``. Returns the pooled matrix and the position ``j'`` of each
    maximum, which :func:`unpool` needs. On ties the sample itself wins when it is
    among the maxima (an all-zero window keeps ``j``); otherwise the first offset
    examined, the leftmost of the maxima.

    Parameters
    ----------
    S : array_like, shape (k, M)
        Finite real matrix (in Deep NMF, nonnegative coefficients).
    radius : int
        Half-width of the window, ``>= 0`` (0 returns ``S`` unchanged). A radius above
        M - 1 is clipped to M - 1: the window already holds every sample of the
        segment, so the cost never grows past that.
    segments : array_like of int, shape (M,), optional
        Columns with different segment numbers are never pooled together.
    """
    S = as_matrix(S, "S")
    radius = min(check_int(radius, "radius", minimum=0), S.shape[1] - 1)
    return _pool(S, radius, _check_segments(segments, S.shape[1]))


def _check_segments(segments, M: int):
    if segments is None:
        return None
    return as_integer_array(
        segments, (M,), "segments", f"with one entry per column ({M})"
    )


def _pool(S, radius, segments):
    M = S.shape[1]
    columns = np.arange(M)
    seg = np.zeros(M, dtype=int) if segments is None else segments
    best = S.copy()
    where = np.broadcast_to(columns, S.shape).copy()
    for offset in range(-radius, radius + 1):  # a loop over the window, not the data
        if offset == 0:
            continue
        j = np.clip(columns + offset, 0, M - 1)
        valid = (columns + offset >= 0) & (columns + offset < M) & (seg[j] == seg)
        candidate = np.where(valid, S[:, j], -np.inf)
        better = candidate > best
        best = np.where(better, candidate, best)
        where = np.where(better, j, where)
    return best, where


def unpool(Z, where) -> np.ndarray:
    """Adjoint of pooling: add each entry ``Z[i, j]`` to column ``where[i, j]``.

    ``Z`` is a finite real k x M matrix and ``where`` the integer positions returned by
    :func:`pool` for a matrix of the same shape.
    """
    Z = as_matrix(Z, "Z")
    M = Z.shape[1]
    where = as_integer_array(
        where, Z.shape, "where", f"of shape {Z.shape} (that of Z), as pool returns it"
    )
    if where.size and (where.min() < 0 or where.max() >= M):
        raise ValueError(f"where must hold column positions between 0 and {M - 1}.")
    return _unpool(Z, where)


def _unpool(Z, where):
    k, M = Z.shape
    flat = (np.arange(k)[:, None] * M + where).ravel()
    return np.bincount(flat, weights=Z.ravel(), minlength=k * M).reshape(k, M)


@dataclass
class DeepNMFResult:
    """The outcome of :func:`deep_nmf`.

    Attributes
    ----------
    A, S : list of ndarray
        Factors per layer: ``A[l]`` is k_{l-1} x k_l, ``S[l]`` is k_l x M.
    B : ndarray or None
        Classifier (P x k_L) when labels were given.
    inputs : list of ndarray
        The data of each layer: ``inputs[0] = X``, ``inputs[l + 1] = pool(S[l])``.
    objective : ndarray
        The energy E after the forward pass and after every refinement sweep.
    errors : ndarray, shape (L + 1,)
        Relative error of ``X ≈ A[0] ... A[l] S[l]`` at the end, per layer.
    n_iter : int
        Refinement sweeps performed.
    converged : bool
    elapsed : ndarray
        Seconds since the start of the refinement, for each entry of ``objective``.
    stop_reason : str
        ``"tol"`` (converged, or ``max_iter=0``), ``"max_iter"`` or ``"max_time"``.
    """

    A: list
    S: list
    B: np.ndarray | None
    inputs: list = field(repr=False)
    objective: np.ndarray = field(repr=False)
    errors: np.ndarray
    n_iter: int
    converged: bool
    elapsed: np.ndarray = field(repr=False)
    stop_reason: str = "tol"

    def approximation(self, depth: int | None = None) -> np.ndarray:
        """``A[0] @ ... @ A[depth] @ S[depth]`` (default: the last layer)."""
        depth = len(self.A) - 1 if depth is None else depth
        return product(self.A[: depth + 1], self.S[depth])

    def predict(self) -> np.ndarray:
        """Labels ``argmax(B S[L])`` of the training columns."""
        if self.B is None:
            raise ValueError("predict needs a model fitted with labels Y.")
        return predict_labels(self.B, self.S[-1])


def _sq_error(x, a, s) -> float:
    """``||x - a s||^2`` (for sparse data without the N x M residual)."""
    if is_sparse(x):
        return residual_norm2(x, a, s)
    return float(np.linalg.norm(x - a @ s) ** 2)


def _energy(inputs, A, S, B, LY, L, lam):
    terms = zip(inputs, A, S, strict=True)
    total = sum(_sq_error(x, a, s) for x, a, s in terms)
    if B is not None:
        total += lam * float(np.linalg.norm(L * (B @ S[-1]) - LY) ** 2)
    return total


def deep_nmf(
    X,
    ranks,
    *,
    radius: int = 1,
    segments=None,
    Y=None,
    L=None,
    lam: float = 1.0,
    method: str = "hals",
    init="nndsvda",
    forward_iter: int = 500,
    max_iter: int = 200,
    tol: float = 1e-6,
    random_state=None,
    max_time: float | None = None,
    verbose: bool = False,
) -> DeepNMFResult:
    r"""Deep NMF: a pooled forward pass, then layer-at-a-time multiplicative refinement.

    **Forward pass.** For each layer, NMF of its input (``method``, ``forward_iter``
    iterations), then pooling of the coefficients to form the next layer's input. With
    labels, the last layer is semi-supervised NMF.

    **Refinement** (one sweep, layers bottom-up; ``U_l`` is :func:`unpool` with the
    current maxima of layer l):

    .. math::
        S^{(\ell)} &\leftarrow S^{(\ell)} \odot
            \frac{A^{(\ell)\top} X^{(\ell)} + U_\ell(A^{(\ell+1)} S^{(\ell+1)})}
                 {A^{(\ell)\top} A^{(\ell)} S^{(\ell)} + U_\ell(X^{(\ell+1)})}
            \quad (\ell < \mathcal L), \\
        S^{(\mathcal L)} &\leftarrow S^{(\mathcal L)} \odot
            \frac{A^{(\mathcal L)\top} X^{(\mathcal L)} + \lambda B^\top (L \odot Y)}
                 {A^{(\mathcal L)\top} A^{(\mathcal L)} S^{(\mathcal L)}
                  + \lambda B^\top (L \odot B S^{(\mathcal L)})}, \\
        A^{(\ell)} &\leftarrow A^{(\ell)} \odot \frac{X^{(\ell)} S^{(\ell)\top}}
            {A^{(\ell)} S^{(\ell)} S^{(\ell)\top}}, \qquad
        X^{(\ell+1)} \leftarrow p(S^{(\ell)}),

    and finally the classifier :math:`B` by the multiplicative update of the masked
    classification term. Entries are floored at 1e-16 (so for all-zero data the
    reconstruction is tiny but not 0, and the relative ``errors`` are ``inf``). Each
    update of the :math:`S^{(\ell)}` is the multiplicative update of the energy E with
    the pooling maxima held fixed: the update of one layer depends only on its
    neighbours, unlike backpropagation, where every layer sees the gradient of the
    whole network.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data, one sample per column. A sparse matrix stays sparse (it
        enters the first layer through products and norms only). Missing entries are
        not supported: a numpy masked array with masked entries is refused.
    ranks : sequence of int
        ``[k_0, ..., k_L]``, non-increasing.
    radius : int, default 1
        Pooling radius r (window of 2r + 1 samples); 0 disables pooling. A radius
        above M - 1 is clipped to M - 1 (the window then holds every sample), so the
        cost never grows past that. Pooling assumes that neighbouring samples (columns)
        are related: on samples in no meaningful order the fit can become worse than
        zero (a :class:`~nnmf_lib.FitWarning` says so); use 0 there.
    segments : array_like of int, shape (M,), optional
        Segment of each sample; windows never cross segments. Default: one segment.
    Y, L, lam :
        Labels, label mask and weight of the classification term (optional).
    method : {"hals", "mu", "anls"}, default "hals"
        NMF algorithm of the forward pass.
    init : str, default "nndsvda"
        Initialization of each layer's NMF (see :func:`nnmf_lib.initialize`).
    forward_iter : int, default 500
        Iterations of each layer's NMF in the forward pass.
    max_iter : int, default 200
        Refinement sweeps.
    tol : float, default 1e-6
        Stop when E decreased by less than ``tol`` (relative) over 10 sweeps.
    random_state : None, int or numpy.random.Generator
        The same seed gives the same result for a fixed BLAS configuration.
    max_time : float, optional
        Time budget in seconds for the forward pass and the refinement together
        (each forward layer gets what the ones before it left). Default: no budget.
    verbose : bool, default False
        Show progress bars (``tqdm.auto``) for each forward layer and for the
        refinement, with the current objective or energy.

    Returns
    -------
    DeepNMFResult

    Warns
    -----
    ConvergenceWarning
        When a forward layer or the refinement stops at its iteration budget or at
        ``max_time`` before its stopping rule holds.
    FitWarning
        When the relative error of the last layer is above 1.

    Notes
    -----
    E is not invariant under rescaling: :math:`A^{(0)} \to A^{(0)} D`,
    :math:`S^{(0)} \to D^{-1} S^{(0)}`, :math:`A^{(1)} \to D^{-1} A^{(1)}` leaves
    the product unchanged but divides the upper layers' residuals by D. So E can be
    lowered without changing the model, it has no minimizer in general, and long
    refinements drift (the norm of ``A[0]`` grows).

    Data outside :math:`[2^{-40}, 2^{40}]` are scaled as in :func:`nnmf_lib.nmf`
    (with ``lam`` scaled to keep the same problem); ``objective`` is in the units of
    :math:`X^2`.
    """
    X = as_data(X, "X")
    ranks = check_ranks(ranks, X)
    radius = check_int(radius, "radius", minimum=0)
    forward_iter = check_int(forward_iter, "forward_iter", minimum=1)
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    Y, L = as_labels(Y, L, X.shape[1])
    lam = check_float(lam, "lam")
    tol = check_float(tol, "tol")
    deadline = Deadline(check_max_time(max_time))
    verbose = check_bool(verbose, "verbose")
    rng = check_random_state(random_state)
    M = X.shape[1]
    segments = _check_segments(segments, M)
    radius = min(radius, M - 1)  # a wider window holds no more samples
    # Work on X / 2^e; the same problem needs S / 2^e, B 2^e and lam / 4^e.
    e = scale_exponent(X)
    data, lam = scaled(X, e), scaled_weight(lam, e)

    # Forward pass: NMF per layer, pooling in between.
    inputs, A, S, where, B = [data], [], [], [], None
    options = dict(init=init, max_iter=forward_iter, random_state=rng, verbose=verbose)
    for depth, k in enumerate(ranks):
        last = depth == len(ranks) - 1
        options["max_time"] = deadline.remaining()
        with phase(f"deep_nmf forward layer {depth + 1}/{len(ranks)}"):
            if last and Y is not None:
                fit = ssnmf(inputs[-1], k, Y, L=L, lam=lam, **options)
                B = fit.B
            else:
                fit = nmf(inputs[-1], k, method=method, **options)
        A.append(np.maximum(fit.A, EPS))
        S.append(np.maximum(fit.S, EPS))
        if not last:
            pooled, arg = _pool(S[-1], radius, segments)
            inputs.append(pooled)
            where.append(arg)
    LY = None if Y is None else L * Y

    history = [_energy(inputs, A, S, B, LY, L, lam)]
    start, elapsed = time.perf_counter(), [0.0]
    converged, reason = max_iter == 0, "max_iter"
    top = len(ranks) - 1
    progress = Progress(verbose, max_iter, "deep_nmf refinement", unit="sweep")
    for _ in range(max_iter):
        for depth in range(top + 1):  # bottom-up, one layer at a time
            a, s, x = A[depth], S[depth], inputs[depth]
            numerator, denominator = a.T @ x, (a.T @ a) @ s
            if depth < top:
                numerator += _unpool(A[depth + 1] @ S[depth + 1], where[depth])
                denominator += _unpool(inputs[depth + 1], where[depth])
            elif B is not None:
                numerator += lam * (B.T @ LY)
                denominator += lam * (B.T @ (L * (B @ s)))
            S[depth] = np.maximum(EPS, s * numerator / np.maximum(denominator, TINY))
            A[depth] = _mu_update_A(x, a, S[depth], None)
            if depth < top:
                inputs[depth + 1], where[depth] = _pool(S[depth], radius, segments)
        if B is not None:
            B = _mu_update_A(LY, B, S[top], L)
        history.append(_energy(inputs, A, S, B, LY, L, lam))
        elapsed.append(time.perf_counter() - start)
        progress.update(history[-1])
        if stopped(history, tol):
            converged = True
            break
        if deadline.expired():
            reason = "max_time"
            break
    progress.close()
    if not converged:
        budget = max_iter if reason == "max_iter" else deadline.max_time
        warn(unconverged_message("deep_nmf", reason, budget, tol), ConvergenceWarning)
    return _result(X, data, e, A, S, B, inputs, history, elapsed, reason, converged)


def _result(X, data, e, A, S, B, inputs, history, elapsed, reason, converged):
    """The result of :func:`deep_nmf`, scaled back to the units of ``X``; warns when
    the fit is worse than zero (pooling over samples in no meaningful order)."""
    errors = [
        _factor_error(data, A[0], _product(A[1 : d + 1], S[d])) for d in range(len(A))
    ]
    if errors[-1] > 1:
        warn(
            f"deep_nmf: the relative error of the last layer is {errors[-1]:.3g}, "
            "above 1 (worse than the zero matrix). The likely cause is pooling over "
            "neighbouring samples whose order means nothing (shuffled columns, a "
            "corpus): use radius=0, or order the samples (and give segments).",
            FitWarning,
        )
    with np.errstate(over="ignore", under="ignore"):  # documented: X^2 may overflow
        objective = np.ldexp(np.array(history), 2 * e)
    return DeepNMFResult(
        A=A,
        S=[np.ldexp(s, e) for s in S],
        B=None if B is None else np.ldexp(B, -e),
        inputs=[X] + [np.ldexp(x, e) for x in inputs[1:]],
        objective=objective,
        errors=np.array(errors),
        n_iter=len(history) - 1,
        converged=converged,
        elapsed=np.array(elapsed),
        stop_reason="tol" if converged else reason,
    )
