r"""Neural NMF (Gao et al., 2019): the dictionaries are the weights of a network whose
activations are nonnegative least-squares solutions.

Forward propagation (the paper's equation (6)), with :math:`S^{(-1)} = X`:

.. math:: S^{(\ell)} = q(A^{(\ell)}, S^{(\ell-1)}), \qquad \ell = 0, \dots, \mathcal L,

where :math:`q(A, X) = \operatorname{argmin}_{S \ge 0} \|X - AS\|_F` is computed by
:func:`nnmf_lib.nnls`.
Only the :math:`A^{(\ell)}` (and the classifier :math:`B`) are free; every
:math:`S^{(\ell)}` is a function of them. Two costs are offered:

- ``"reconstruction"``, the paper's cost (7):
  :math:`C = \|W \odot (X - A^{(0)} \cdots A^{(\mathcal L)} S^{(\mathcal L)})\|_F^2
  + \lambda \|L \odot (Y - B S^{(\mathcal L)})\|_F^2`;
- ``"energy"``: :math:`E = \sum_\ell \|S^{(\ell-1)} - A^{(\ell)} S^{(\ell)}\|_F^2
  + \lambda \|L \odot (Y - B S^{(\mathcal L)})\|_F^2` (the first term masked by ``W``).

Their exact gradients come from one reverse sweep through the layers, each step a
vector-Jacobian product of :math:`q` (:func:`nnmf_lib.nnls_vjp`), batched over columns.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    ConvergenceWarning,
    RankDeficiencyWarning,
    as_labels,
    as_layers,
    as_masked_data,
    as_matrix,
    check_choice,
    check_float,
    check_int,
    check_random_state,
    check_ranks,
    check_shape,
    warn,
)
from .hierarchical import _product, hnmf, product
from .metrics import _ratio, predict_labels
from .nmf import stopped
from .nnls import _bpp, _vjp

__all__ = ["NeuralNMFResult", "forward", "loss_and_grad", "neural_nmf"]

LOSSES = ("reconstruction", "energy")


@dataclass
class _Labels:
    """Validated supervision: one-hot ``Y`` with unknown columns zeroed, mask ``L``."""

    Y: np.ndarray
    L: np.ndarray
    lam: float

    @classmethod
    def build(cls, Y, L, lam, M: int) -> _Labels | None:
        lam = check_float(lam, "lam")  # checked even when unused: a typo is a bug
        Y, L = as_labels(Y, L, M)
        return None if Y is None else cls(Y, L, lam)


def _forward(A, X, W, supports=None):
    S, data = [], X
    for i, a in enumerate(A):
        support = None if supports is None else supports[i]
        data = _bpp(a, data, W if i == 0 else None, support, 100)[0]
        S.append(data)
    return S


def forward(A, X, *, W=None) -> list[np.ndarray]:
    """Forward propagation, equation (6): ``S[l] = q(A[l], S[l-1])``, ``S[-1] = X``.

    Parameters
    ----------
    A : list of array_like
        Dictionaries ``A[0]`` (N x k_0), ``A[1]`` (k_0 x k_1), ..., nonnegative.
    X : array_like, shape (N, M)
        Nonnegative data.
    W : array_like of {0, 1}, shape (N, M), optional
        Data mask: the first layer fits only the observed entries of each column.

    Returns
    -------
    list of ndarray
        ``S[l]`` of shape (k_l, M).
    """
    X, W = as_masked_data(X, W)
    return _forward(as_layers(A, X.shape[0]), X, W)


def _residuals(A, X, S, W, loss):
    """The residuals the cost is made of: one for the product, or one per layer."""
    if loss == "reconstruction":
        R = X - _product(A, S[-1])
        return [R if W is None else W * R]
    inputs = [X, *S[:-1]]
    R = [x - a @ s for x, a, s in zip(inputs, A, S, strict=True)]
    if W is not None:
        R[0] = W * R[0]
    return R


def _cost(A, B, X, S, W, labels, loss):
    residuals = _residuals(A, X, S, W, loss)
    cost = sum(float(np.vdot(r, r)) for r in residuals)
    if labels is not None:
        E = labels.L * (labels.Y - B @ S[-1])
        cost += labels.lam * float(np.vdot(E, E))
    return cost, residuals


def _gradient(A, B, X, S, W, labels, loss, residuals):
    """Exact gradient of the cost: direct terms, then a reverse sweep through q."""
    depth = len(A)
    if loss == "reconstruction":
        (R,) = residuals
        prefix = [A[0]]  # prefix[l] = A[0] ... A[l]
        for a in A[1:]:
            prefix.append(prefix[-1] @ a)
        suffix = [S[-1]]  # suffix[l] = A[l+1] ... A[L] S[L]
        for a in reversed(A[1:]):
            suffix.insert(0, a @ suffix[0])
        direct_A = []
        for layer in range(depth):
            RQ = R @ suffix[layer].T  # N x k_l
            direct_A.append(-2 * (RQ if layer == 0 else prefix[layer - 1].T @ RQ))
        direct_S = [None] * (depth - 1) + [-2 * (prefix[-1].T @ R)]
    else:
        direct_A = [-2 * (r @ s.T) for r, s in zip(residuals, S, strict=True)]
        direct_S = [-2 * (a.T @ r) for a, r in zip(A, residuals, strict=True)]
        for layer in range(depth - 1):  # S[l] is also the data of layer l + 1
            direct_S[layer] += 2 * residuals[layer + 1]
    grad_B = None
    if labels is not None:
        E = labels.L * (labels.Y - B @ S[-1])
        direct_S[-1] = direct_S[-1] - 2 * labels.lam * (B.T @ E)
        grad_B = -2 * labels.lam * (E @ S[-1].T)

    grads, singular = [None] * depth, False
    g = direct_S[-1]
    for layer in reversed(range(depth)):  # the reverse sweep
        x = X if layer == 0 else S[layer - 1]
        mask = W if layer == 0 else None
        dA, dX, flags = _vjp(A[layer], x, S[layer], g, mask)
        singular |= bool(flags.any())
        grads[layer] = direct_A[layer] + dA
        if layer > 0:
            g = dX if direct_S[layer - 1] is None else dX + direct_S[layer - 1]
    if singular:
        warn(
            "some A[l] is rank-deficient on the support of a column; the gradient "
            "there uses the least-squares (pseudoinverse) solution.",
            RankDeficiencyWarning,
        )
    return grads, grad_B


def loss_and_grad(
    A, X, *, Y=None, L=None, B=None, lam: float = 1.0, W=None, loss="reconstruction"
):
    r"""The cost of Neural NMF and its exact gradient with respect to every A[l] and B.

    The forward pass computes ``S[l] = q(A[l], S[l-1])``. The gradient is the sum of the
    direct terms (with all ``S`` held fixed) and of the terms that flow through the
    ``S``: starting from :math:`g = \partial C / \partial S^{(\mathcal L)}`, each layer,
    from the last to the first, adds the vector-Jacobian product of ``q`` with respect
    to its dictionary and passes the one with respect to its input down to the layer
    below. This is the paper's chain rule with its :math:`\Phi` and :math:`U` matrices,
    evaluated from the top down, batched over columns.

    Parameters
    ----------
    A : list of array_like
        Dictionaries ``A[0]`` (N x k_0), ..., ``A[L]`` (k_{L-1} x k_L), nonnegative.
    X : array_like, shape (N, M)
        Nonnegative data.
    Y : array_like, shape (P, M), optional
        Labels (one-hot). Requires ``B``.
    L : array_like of {0, 1}, shape (P, M), optional
        Label mask (default: every label known).
    B : array_like, shape (P, k_L), optional
        Classifier.
    lam : float, default 1.0
        Weight of the classification term (the paper's cost (7) has 1).
    W : array_like of {0, 1}, shape (N, M), optional
        Data mask (first layer and reconstruction term).
    loss : {"reconstruction", "energy"}

    Returns
    -------
    cost : float
    grads : list of ndarray
        ``grads[l]`` has the shape of ``A[l]``.
    grad_B : ndarray or None
        Gradient with respect to ``B`` (None without labels).
    """
    X, W = as_masked_data(X, W)
    A = as_layers(A, X.shape[0])
    loss = check_choice(loss, "loss", LOSSES)
    labels = _Labels.build(Y, L, lam, X.shape[1])
    if labels is not None:
        if B is None:
            raise ValueError("B is required when labels Y are given.")
        B = as_matrix(B, "B")
        check_shape(B, (labels.Y.shape[0], A[-1].shape[1]), "B", "classes x k_L")
    S = _forward(A, X, W)
    cost, residuals = _cost(A, B, X, S, W, labels, loss)
    grads, grad_B = _gradient(A, B, X, S, W, labels, loss, residuals)
    return cost, grads, grad_B


@dataclass
class NeuralNMFResult:
    """The outcome of :func:`neural_nmf`.

    Attributes
    ----------
    A : list of ndarray
        Trained dictionaries.
    S : list of ndarray
        ``forward(A, X)``: the representation of the training columns at every layer.
    B : ndarray or None
        Trained classifier (P x k_L), when labels were given.
    n_epochs : int
    cost : ndarray
        The cost before training and after every epoch.
    errors : ndarray
        Relative error of ``X ≈ A[0] ... A[L] S[L]`` before training and after every
        epoch (masked by ``W`` if given).
    steps : ndarray
        The step size accepted at every epoch (projected gradient descent).
    converged : bool
    elapsed : ndarray
        Seconds since the start of training, for every entry of ``cost``.
    loss : str
    """

    A: list
    S: list = field(repr=False)
    B: np.ndarray | None
    n_epochs: int
    cost: np.ndarray = field(repr=False)
    errors: np.ndarray = field(repr=False)
    steps: np.ndarray = field(repr=False)
    converged: bool
    elapsed: np.ndarray = field(repr=False)
    loss: str

    def approximation(self) -> np.ndarray:
        """``A[0] @ ... @ A[L] @ S[L]`` for the training columns."""
        return product(self.A, self.S[-1])

    def transform(self, X_new) -> list[np.ndarray]:
        """Representations of new columns at every layer (forward propagation)."""
        return forward(self.A, X_new)

    def predict(self, X_new=None) -> np.ndarray:
        """Labels ``argmax(B S[L])`` of the training columns, or of ``X_new``."""
        if self.B is None:
            raise ValueError("predict needs a model trained with labels Y.")
        S = self.S[-1] if X_new is None else self.transform(X_new)[-1]
        return predict_labels(self.B, S)


def _initial_layers(init, X, W, ranks, labels, rng):
    if isinstance(init, (list, tuple)):
        A = as_layers(init, X.shape[0])
        shapes = [a.shape[1] for a in A]
        if shapes != ranks:
            raise ValueError(f"init has ranks {shapes}, but ranks is {ranks}.")
        return [a.copy() for a in A]
    init = check_choice(init, "init", ("hnmf", "random"))
    if init == "hnmf":
        kw = {} if labels is None else dict(Y=labels.Y, L=labels.L, lam=labels.lam)
        with warnings.catch_warnings():  # only a start: training continues from it
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = hnmf(X, ranks, W=W, random_state=rng, **kw)
        return [a.copy() for a in start.A]
    rows = [X.shape[0], *ranks[:-1]]
    return [
        np.abs(rng.standard_normal((n, k))) for n, k in zip(rows, ranks, strict=True)
    ]


def _initial_classifier(S_last, labels):
    """Nonnegative least-squares classifier on the labelled columns."""
    known = labels.L.any(axis=0)
    B = np.zeros((labels.Y.shape[0], S_last.shape[0]))
    if known.any():
        B = _bpp(S_last[:, known].T, labels.Y[:, known].T, None, None, 100)[0].T
    return B


def neural_nmf(
    X,
    ranks,
    *,
    Y=None,
    L=None,
    lam: float = 1.0,
    W=None,
    loss: str = "reconstruction",
    init="hnmf",
    optimizer: str = "pgd",
    lr: float = 1e-3,
    max_epochs: int = 500,
    tol: float = 1e-6,
    random_state=None,
    callback=None,
) -> NeuralNMFResult:
    r"""Train Neural NMF (the paper's Algorithm 1) with a projected gradient method.

    Each epoch computes the cost and its exact gradient (:func:`loss_and_grad`), then
    takes a step on all dictionaries (and the classifier) at once and projects it onto
    the nonnegative orthant. The classifier is kept nonnegative too, as in equation (2).

    - ``optimizer="pgd"`` (default) chooses the step by backtracking: it starts from
      twice the last accepted step and halves it until the new point satisfies the
      sufficient-decrease condition
      :math:`C(\theta^+) \le C(\theta) + \langle \nabla C, \theta^+ - \theta\rangle
      + \|\theta^+ - \theta\|^2 / (2t)`. The cost therefore never increases, and no
      step size needs tuning.
    - ``optimizer="adam"`` takes projected Adam steps of size ``lr`` (in the units of
      the entries of A); the cost may go up and down.

    Forward passes are warm-started from the supports of the previous epoch.

    Parameters
    ----------
    X : array_like, shape (N, M)
        Nonnegative data, one sample per column.
    ranks : sequence of int
        ``[k_0, ..., k_L]``, non-increasing.
    Y, L, lam :
        Labels (P x M, one-hot), label mask and weight of the classification term.
    W : array_like of {0, 1}, shape (N, M), optional
        Data mask.
    loss : {"reconstruction", "energy"}, default "reconstruction"
        The paper's cost (7), or the sum of the layers' own errors.
    init : "hnmf", "random" or list of arrays
        Starting dictionaries: from hierarchical NMF (default; with a semi-supervised
        last layer when labels are given), random, or given.
    optimizer : {"pgd", "adam"}
    lr : float, default 1e-3
        Step size of Adam (unused by ``"pgd"``).
    max_epochs : int, default 500
    tol : float, default 1e-6
        Stop when the cost decreased by less than ``tol`` (relative) over 10 epochs.
    random_state : None, int or numpy.random.Generator
        Seed of the initialization.
    callback : callable, optional
        Called as ``callback(epoch, A, B, cost)`` after every epoch; returning True
        stops the training.

    Returns
    -------
    NeuralNMFResult
    """
    X, W = as_masked_data(X, W)
    ranks = check_ranks(ranks, X)
    loss = check_choice(loss, "loss", LOSSES)
    optimizer = check_choice(optimizer, "optimizer", ("pgd", "adam"))
    lr = check_float(lr, "lr")
    max_epochs = check_int(max_epochs, "max_epochs", minimum=0)
    tol = check_float(tol, "tol")
    rng = check_random_state(random_state)
    labels = _Labels.build(Y, L, lam, X.shape[1])

    A = _initial_layers(init, X, W, ranks, labels, rng)
    S = _forward(A, X, W)
    B = None if labels is None else _initial_classifier(S[-1], labels)
    cost, residuals = _cost(A, B, X, S, W, labels, loss)
    norm_x = np.linalg.norm(X)

    def error(A, S):
        R = X - _product(A, S[-1])
        return _ratio(np.linalg.norm(R if W is None else W * R), norm_x)

    history, errors, steps, elapsed = [cost], [error(A, S)], [], [0.0]
    start = time.perf_counter()
    params = [*A, B] if B is not None else list(A)
    grads = None
    step = None
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    converged = max_epochs == 0
    for epoch in range(1, max_epochs + 1):
        grads, grad_B = _gradient(A, B, X, S, W, labels, loss, residuals)
        if grad_B is not None:
            grads = [*grads, grad_B]
        supports = [s > 0 for s in S]
        if optimizer == "adam":
            new = []
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                m, v = moments[i]
                m[:] = 0.9 * m + 0.1 * g
                v[:] = 0.999 * v + 0.001 * g * g
                m_hat, v_hat = m / (1 - 0.9**epoch), v / (1 - 0.999**epoch)
                new.append(np.maximum(p - lr * m_hat / (np.sqrt(v_hat) + 1e-12), 0.0))
            step = lr
            A_new = new[: len(ranks)]
            S = _forward(A_new, X, W, supports)
            B_new = new[len(ranks)] if labels is not None else None
            cost, residuals = _cost(A_new, B_new, X, S, W, labels, loss)
        else:
            if step is None:  # first step: move the parameters by about 1%
                size = np.sqrt(sum(float(np.vdot(p, p)) for p in params))
                slope = np.sqrt(sum(float(np.vdot(g, g)) for g in grads))
                step = 0.01 * size / max(slope, np.finfo(float).tiny)
            accepted = _backtrack(
                params, grads, cost, step, X, W, labels, loss, supports
            )
            if accepted is None:  # no decrease possible: stationary (to rounding)
                converged = True
                break
            new, step, S, cost, residuals = accepted
        params = new
        A = params[: len(ranks)]
        B = params[len(ranks)] if labels is not None else None
        history.append(cost)
        errors.append(error(A, S))
        steps.append(step)
        elapsed.append(time.perf_counter() - start)
        if callback is not None and callback(epoch, A, B, cost):
            break
        if stopped(history, tol):
            converged = True
            break
    return NeuralNMFResult(
        A=list(A),
        S=S,
        B=B,
        n_epochs=len(history) - 1,
        cost=np.array(history),
        errors=np.array(errors),
        steps=np.array(steps),
        converged=converged,
        elapsed=np.array(elapsed),
        loss=loss,
    )


def _backtrack(params, grads, cost, step, X, W, labels, loss, supports):
    """Projected gradient step with backtracking.

    Returns the new parameters, the accepted step, and the forward pass, cost and
    residuals at the new point; or None when no step decreases the cost.
    """
    n_layers = len(supports)
    step *= 2.0  # let the step grow again after a run of small ones
    for _ in range(60):
        new = [
            np.maximum(p - step * g, 0.0) for p, g in zip(params, grads, strict=True)
        ]
        moved = [n - p for n, p in zip(new, params, strict=True)]
        decrease = sum(float(np.vdot(g, d)) for g, d in zip(grads, moved, strict=True))
        distance2 = sum(float(np.vdot(d, d)) for d in moved)
        if distance2 == 0.0:
            return None
        A = new[:n_layers]
        B = new[n_layers] if labels is not None else None
        S = _forward(A, X, W, supports)
        trial, residuals = _cost(A, B, X, S, W, labels, loss)
        if trial <= cost + decrease + distance2 / (2 * step):
            return new, step, S, trial, residuals
        step /= 2.0
    return None
