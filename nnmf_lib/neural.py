r"""Neural NMF (Gao et al., 2019): the dictionaries are the weights of a network whose
activations are nonnegative least-squares solutions.

Forward propagation (the paper's equation (6)), with :math:`S^{(-1)} = X`:

.. math:: S^{(\ell)} = q(A^{(\ell)}, S^{(\ell-1)}), \qquad \ell = 0, \dots, \mathcal L,

where :math:`q(A, X) = \operatorname{argmin}_{S \ge 0} \|X - AS\|_F` is computed by
:func:`nnmf_lib.nnls`.
Only the :math:`A^{(\ell)}` (and the classifier :math:`B`) are free; every
:math:`S^{(\ell)}` is a function of them. Two costs are offered:

- ``"reconstruction"``, which is the paper's cost (7) when ``lam = 1`` and ``W`` is
  all ones:
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
from ._sparse import (
    SparseMask,
    axis_max,
    is_sparse,
    residual_norm2,
    sq_norm,
    times_t,
)
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
from .hierarchical import hnmf, product
from .metrics import _ratio, predict_labels
from .nmf import stopped
from .nnls import _exponent, _nnls, _Tally, _vjp, _vjp_z

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


def _forward(A, X, W, previous=None, x_exp=None):
    """Forward propagation on validated input: every layer's NNLS solution, with what
    its solver knows (reused by the cost and the gradient). The solutions of a
    ``previous`` forward pass (a nearby point) warm-start each layer: their supports,
    and how their supports were solved; ``x_exp`` are the column exponents of X when
    known (X fixed)."""
    layers, data = [], X
    for i, a in enumerate(A):
        support = hint = None
        if previous is not None:
            support = previous[i].S > 0
            hint = bool(previous[i].red.cache.get("complement"))
        first = i == 0
        data, solution = _nnls(
            a,
            data,
            W if first else None,
            support,
            x_exp=x_exp if first else None,
            complement=hint,
        )
        layers.append(solution)
    return layers


def forward(A, X, *, W=None) -> list[np.ndarray]:
    """Forward propagation, equation (6): ``S[l] = q(A[l], S[l-1])``, ``S[-1] = X``.

    Parameters
    ----------
    A : list of array_like
        Dictionaries ``A[0]`` (N x k_0), ``A[1]`` (k_0 x k_1), ..., nonnegative.
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data. A sparse matrix stays sparse (see :func:`nnmf_lib.nnls`); a
        numpy masked array means ``W = ~X.mask``.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask: the first layer fits only the observed entries of each column.

    Returns
    -------
    list of ndarray
        ``S[l]`` of shape (k_l, M).

    Warns
    -----
    AccuracyWarning, ConvergenceWarning, RankDeficiencyWarning
        As :func:`nnmf_lib.nnls` does, for any layer.
    """
    X, W = as_masked_data(X, W)
    layers = _forward(as_layers(A, X.shape[0]), X, W)
    _warn_layers(layers, "forward")
    return [layer.S for layer in layers]


def _warn_layers(layers, where, tally=None):
    """Issue the NNLS warnings of a forward pass (or of a tally of many)."""
    if tally is None:
        tally = _Tally()
        for layer in layers:
            tally.add(layer.info, layer.S.shape[1])
    for message, category in tally.warnings(f"{where} (nnls at some layer)"):
        warn(message, category)


@dataclass
class _Fit:
    """The cost and the terms of it that the gradient reuses.

    ``Y`` is what A[0] multiplies in the layer-0 residual ``R0 = X - A[0] Y``
    (``A[1] ... A[L] S[L]`` for the reconstruction cost, ``S[0]`` for the energy);
    ``V = A[0]^T R0``; ``R0`` itself only when it was formed (mask, or a fit so close
    that the Gram identity would lose digits); ``inner`` the residuals of layers >= 1
    (energy); ``E`` the masked label residual; ``error2`` the squared error of the
    product ``A[0] ... A[L] S[L]``.
    """

    cost: float
    error2: float
    Y: np.ndarray
    V: np.ndarray
    R0: np.ndarray | None
    inner: list
    E: np.ndarray | None


def _layer0(A0, X, Y, W, layer, norm_x2):
    """``||W * (X - A0 Y)||^2``, ``A0^T R0`` and ``R0`` (or None).

    Without a mask, from the Gram identity
    ``||X||^2 - 2 <A0^T X, Y> + <A0^T A0, Y Y^T>``: ``A0^T X`` is known from the
    forward pass, so no N x M product is needed. When the fit is so close that the
    difference would lose digits (an error below 0.1% of the data), the residual is
    formed instead.
    """
    if W is None:
        AtX, G0 = layer.AtX(), A0.T @ A0
        GY = G0 @ Y
        f = norm_x2 - 2.0 * float(np.vdot(AtX, Y)) + float(np.vdot(GY, Y))
        if f > 1e-6 * norm_x2:
            return f, AtX - GY, None
        if is_sparse(X):  # never the N x M residual (see nnmf_lib._sparse)
            return max(f, 0.0), AtX - GY, None
    elif isinstance(W, SparseMask):  # sparse X, given as W * X
        AtX, WAY = layer.AtX(), W.product(A0, Y)
        f = residual_norm2(X, A0, Y, W, norm_x2, float(np.vdot(AtX, Y)))
        return f, AtX - A0.T @ WAY, WAY.residual(X)
    R = X - A0 @ Y
    if W is not None:
        R *= W
    return float(np.vdot(R, R)), A0.T @ R, R


def _suffixes(A, S_last):
    """``[A[1] ... A[L] S[L], A[2] ... A[L] S[L], ..., S[L]]`` (k_l x M each)."""
    out = [S_last]
    for a in reversed(A[1:]):
        out.insert(0, a @ out[0])
    return out


def _cost(A, B, X, layers, W, labels, loss, norm_x2) -> _Fit:
    """The cost (reconstruction or energy, plus the label term) of a forward pass."""
    S = [layer.S for layer in layers]
    product_Y = _suffixes(A, S[-1])[0]
    Y = product_Y if loss == "reconstruction" else S[0]
    cost, V, R0 = _layer0(A[0], X, Y, W, layers[0], norm_x2)
    error2, inner = cost, []
    if loss == "energy":
        error2 = _layer0(A[0], X, product_Y, W, layers[0], norm_x2)[0]
        inner = [x - a @ s for x, a, s in zip(S[:-1], A[1:], S[1:], strict=True)]
        cost += sum(float(np.vdot(r, r)) for r in inner)
    E = None
    if labels is not None:
        E = labels.L * (labels.Y - B @ S[-1])
        cost += labels.lam * float(np.vdot(E, E))
    return _Fit(cost, error2, Y, V, R0, inner, E)


def _direct_terms(A, S, loss, fit):
    """The derivatives with every S held fixed, for layers >= 1 and the S[l]."""
    depth = len(A)
    direct_A, direct_S = [None] * depth, [None] * depth
    if loss == "reconstruction":
        Q = _suffixes(A, S[-1])
        AtR = fit.V  # P_l^T R = (A[1] ... A[l])^T A[0]^T R: only k x M products
        for layer in range(1, depth):
            direct_A[layer] = -2 * (AtR @ Q[layer].T)
            AtR = A[layer].T @ AtR
        direct_S[-1] = -2 * AtR
    else:
        direct_S[0] = -2 * fit.V
        for layer, r in enumerate(fit.inner, start=1):
            direct_A[layer] = -2 * (r @ S[layer].T)
            direct_S[layer] = -2 * (A[layer].T @ r)
            direct_S[layer - 1] = direct_S[layer - 1] + 2 * r  # S[l-1] is data here
    return direct_A, direct_S


def _gradient(A, B, X, layers, W, labels, loss, fit):
    """Exact gradient of the cost: direct terms, then a reverse sweep through q.

    Layer 0's gradient, direct term ``-2 R0 Y^T`` plus the vector-Jacobian product
    ``X Z^T - A0 (S0 Z^T + Z S0^T)``, is formed with one product with X:
    ``X (Z - 2Y)^T - A0 (S0 Z^T + Z S0^T - 2 Y Y^T)``. Returns the gradients, the one
    of ``B`` and whether some support was rank-deficient.
    """
    S = [layer.S for layer in layers]
    direct_A, direct_S = _direct_terms(A, S, loss, fit)
    grad_B = None
    if labels is not None:
        direct_S[-1] = direct_S[-1] - 2 * labels.lam * (B.T @ fit.E)
        grad_B = -2 * labels.lam * (fit.E @ S[-1].T)
    grads, singular = [None] * len(A), False
    g = direct_S[-1]
    for layer in reversed(range(1, len(A))):  # the reverse sweep
        dA, dX, flags = _vjp(A[layer], S[layer - 1], S[layer], g, None, layers[layer])
        singular |= bool(flags.any())
        grads[layer] = direct_A[layer] + dA
        g = dX if direct_S[layer - 1] is None else dX + direct_S[layer - 1]
    if fit.R0 is None:  # no mask: the folded form, one product with X
        Z, flags = _vjp_z(layers[0], A[0], S[0], g)
        inner = S[0] @ Z.T + Z @ S[0].T - 2 * (fit.Y @ fit.Y.T)
        grads[0] = times_t(X, Z - 2 * fit.Y) - A[0] @ inner
    else:
        dA, _, flags = _vjp(A[0], X, S[0], g, W, layers[0])
        grads[0] = dA - 2 * (fit.R0 @ fit.Y.T)
    return grads, grad_B, singular | bool(flags.any())


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
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data. A sparse matrix stays sparse: it enters through the
        products of the forward pass and of the gradient of the first layer, and the
        cost through the Gram identity, O(nnz(X) k_0 + (N + M) k_0^2) per evaluation.
        A numpy masked array means ``W = ~X.mask``.
    Y : array_like, shape (P, M), optional
        Labels (one-hot). Requires ``B``.
    L : array_like of {0, 1}, shape (P, M), optional
        Label mask (default: every label known).
    B : array_like, shape (P, k_L), optional
        Classifier.
    lam : float, default 1.0
        Weight of the classification term (the paper's cost (7) has 1).
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask (first layer and reconstruction term; with sparse ``X``, as in
        :func:`nnmf_lib.nnls`).
    loss : {"reconstruction", "energy"}

    Returns
    -------
    cost : float
    grads : list of ndarray
        ``grads[l]`` has the shape of ``A[l]``.
    grad_B : ndarray or None
        Gradient with respect to ``B`` (None without labels).

    Warns
    -----
    AccuracyWarning, ConvergenceWarning, RankDeficiencyWarning
        As :func:`nnmf_lib.nnls` does, for any layer of the forward pass.
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
    layers = _forward(A, X, W)
    if W is None or is_sparse(X):  # sparse X arrives as W * X
        norm_x2 = sq_norm(X)
    else:
        norm_x2 = float(np.vdot(W * X, W * X))
    fit = _cost(A, B, X, layers, W, labels, loss, norm_x2)
    grads, grad_B, singular = _gradient(A, B, X, layers, W, labels, loss, fit)
    _warn_layers(layers, "loss_and_grad")
    if singular and not any(layer.info.rank_deficient for layer in layers):
        warn(
            "loss_and_grad: some A[l] is rank-deficient on the support of a column; "
            "the gradient there uses the least-squares (pseudoinverse) solution.",
            RankDeficiencyWarning,
        )
    return fit.cost, grads, grad_B


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
    stop_reason : str
        ``"tol"`` or ``"stationary"`` (converged; also ``"tol"`` for
        ``max_epochs=0``), ``"max_epochs"``, ``"max_time"`` or ``"callback"``.
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
    stop_reason: str = "tol"

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


def _initial_layers(init, X, W, ranks, labels, rng, options):
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
            start = hnmf(X, ranks, W=W, random_state=rng, **kw, **options)
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
        B = _nnls(S_last[:, known].T, labels.Y[:, known].T)[0].T
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
    init_max_iter: int = 1000,
    max_time: float | None = None,
    verbose: bool = False,
) -> NeuralNMFResult:
    r"""Train Neural NMF (the paper's Algorithm 1) with a projected gradient method.

    Each epoch computes the cost and its exact gradient (:func:`loss_and_grad`), then
    takes a step on all dictionaries (and the classifier) at once and projects it onto
    the nonnegative orthant. The classifier is kept nonnegative too, as in equation (2).

    - ``optimizer="pgd"`` (default) chooses the step by backtracking: it starts from
      the last accepted step and halves it until the new point satisfies the
      sufficient-decrease condition
      :math:`C(\theta^+) \le C(\theta) + \langle \nabla C, \theta^+ - \theta\rangle
      + \|\theta^+ - \theta\|^2 / (2t)`; after three epochs in a row whose first
      trial was accepted, the step doubles. The cost therefore never increases, and no
      step size needs tuning.
    - ``optimizer="adam"`` takes projected Adam steps of size ``lr`` (in the units of
      the entries of A); the cost may go up and down.

    Forward passes are warm-started from the previous pass (its supports, and the way
    its solves were made).

    Parameters
    ----------
    X : array_like or scipy.sparse matrix, shape (N, M)
        Nonnegative data, one sample per column. A sparse matrix stays sparse (see
        :func:`loss_and_grad`): an epoch costs O(nnz(X) k_0 + (N + M) k_0^2) for the
        first layer, and memory stays O(nnz(X) + (N + M) k_0 + M k_0^2). A numpy
        masked array means ``W = ~X.mask``.
    ranks : sequence of int
        ``[k_0, ..., k_L]``, non-increasing.
    Y, L, lam :
        Labels (P x M, one-hot), label mask and weight of the classification term.
    W : array_like of {0, 1} or scipy.sparse matrix, shape (N, M), optional
        Data mask (with sparse ``X``, as in :func:`nnmf_lib.nmf`).
    loss : {"reconstruction", "energy"}, default "reconstruction"
        The paper's cost (7) (with weight ``lam`` and mask ``W``), or the sum of the
        layers' own errors.
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
    init_max_iter : int, default 1000
        Iterations of each layer's NMF in the hNMF start (``init="hnmf"``).
    max_time : float, optional
        Time budget in seconds for the start and the training together: the start
        gets all of it, the training what the start left, and training stops after
        the first epoch that ends past it (``stop_reason="max_time"``). Default: no
        budget.
    verbose : bool, default False
        Show progress bars (``tqdm.auto``): one per layer of the hNMF start, then one
        for the epochs, each with the current cost.

    Returns
    -------
    NeuralNMFResult

    Warns
    -----
    ConvergenceWarning
        When training stops at ``max_epochs`` or ``max_time`` before the stopping
        rule holds (not for the hNMF start, which is only a starting point).
    AccuracyWarning, RankDeficiencyWarning
        As :func:`nnmf_lib.nnls` does, for any forward pass.

    Notes
    -----
    Every phase is bounded: the hNMF start by ``len(ranks) * init_max_iter`` NMF
    iterations, the training by ``max_epochs`` epochs of one gradient and (``"pgd"``)
    at most 60 forward passes each, about 1.4 on average; ``max_time`` bounds
    both. Data outside :math:`[2^{-40}, 2^{40}]` are scaled as in
    :func:`nnmf_lib.nmf` (with ``lam`` scaled to keep the same problem); ``cost`` is
    in the units of :math:`X^2`.
    """
    X, W = as_masked_data(X, W)
    ranks = check_ranks(ranks, X)
    loss = check_choice(loss, "loss", LOSSES)
    optimizer = check_choice(optimizer, "optimizer", ("pgd", "adam"))
    lr = check_float(lr, "lr")
    max_epochs = check_int(max_epochs, "max_epochs", minimum=0)
    init_max_iter = check_int(init_max_iter, "init_max_iter", minimum=1)
    tol = check_float(tol, "tol")
    deadline = Deadline(check_max_time(max_time))
    verbose = check_bool(verbose, "verbose")
    if callback is not None and not callable(callback):
        raise TypeError(
            "callback must be a function callback(epoch, A, B, cost) or None; got "
            f"{callback!r}."
        )
    rng = check_random_state(random_state)
    labels = _Labels.build(Y, L, lam, X.shape[1])
    # Work on X / 2^e: the A are unchanged, S / 2^e, B 2^e and lam / 4^e.
    e = scale_exponent(X)
    X = scaled(X, e)
    if labels is not None and e:
        labels = _Labels(labels.Y, labels.L, scaled_weight(labels.lam, e))
    start = dict(max_iter=init_max_iter, max_time=deadline.remaining(), verbose=verbose)
    with phase("neural_nmf start"):
        A = _initial_layers(init, X, W, ranks, labels, rng, start)
    problem = _Problem.build(X, W, labels, loss)
    layers = problem.forward(A)
    B = None if labels is None else _initial_classifier(layers[-1].S, labels)
    options = dict(optimizer=optimizer, lr=lr, max_epochs=max_epochs, tol=tol)
    run = _Run(deadline, Progress(verbose, max_epochs, "neural_nmf", unit="epoch"))
    run.callback = _unscaled_callback(callback, e)
    A, B, layers, record, reason = _train(problem, A, B, layers, options, run)
    _warn_layers(layers, "neural_nmf", record.tally)
    if reason in ("max_epochs", "max_time"):
        budget = max_epochs if reason == "max_epochs" else deadline.max_time
        warn(unconverged_message("neural_nmf", reason, budget, tol), ConvergenceWarning)
    with np.errstate(over="ignore", under="ignore"):  # documented: X^2 may overflow
        cost = np.ldexp(np.array(record.history), 2 * e)
    return NeuralNMFResult(
        A=list(A),
        S=[np.ldexp(layer.S, e) for layer in layers],
        B=None if B is None else np.ldexp(B, -e),
        n_epochs=len(record.history) - 1,
        cost=cost,
        errors=np.array(record.errors),
        steps=np.array(record.steps),
        converged=reason in ("tol", "stationary"),
        elapsed=np.array(record.elapsed),
        loss=loss,
        stop_reason=reason,
    )


def _unscaled_callback(callback, e):
    """The user's callback, given B and the cost in the units of the data."""
    if callback is None or e == 0:
        return callback
    return lambda epoch, A, B, cost: callback(
        epoch, A, None if B is None else np.ldexp(B, -e), float(np.ldexp(cost, 2 * e))
    )


@dataclass
class _Run:
    """How a training run is bounded and shown: its deadline, progress bar and the
    user's callback."""

    deadline: Deadline
    progress: Progress
    callback: object = None


@dataclass
class _Record:
    """The histories of a training run (cost, relative error, steps, times) and the
    tally of its NNLS solves."""

    history: list
    errors: list
    steps: list
    elapsed: list
    tally: _Tally


def _train(problem, A, B, layers, options, run):
    """Projected gradient epochs (Adam or backtracking) on validated input.

    Returns the dictionaries, the classifier, the last forward pass, the record and
    why training stopped ("tol", "stationary", "max_epochs", "max_time", "callback").
    """
    n, labels, optimizer = len(A), problem.labels, options["optimizer"]
    fit = problem.cost(A, B, layers)
    norm_x = np.sqrt(problem.norm_x2)
    record = _Record(
        [fit.cost], [_ratio(np.sqrt(fit.error2), norm_x)], [], [0.0], _Tally()
    )
    problem.tally(record.tally, layers)
    start = time.perf_counter()
    params = [*A, B] if B is not None else list(A)
    step, calm = None, 0
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    reason = "tol" if options["max_epochs"] == 0 else "max_epochs"
    for epoch in range(1, options["max_epochs"] + 1):
        grads, grad_B, _ = _gradient(
            A, B, problem.X, layers, problem.W, labels, problem.loss, fit
        )
        grads = [*grads, grad_B] if grad_B is not None else grads
        if optimizer == "adam":
            params = _adam_step(params, grads, moments, options["lr"], epoch)
            layers = problem.forward(params[:n], layers)
            B = params[n] if labels is not None else None
            fit, step = problem.cost(params[:n], B, layers), options["lr"]
        else:
            step = _first_step(params, grads) if step is None else step
            accepted = _backtrack(params, grads, fit.cost, step, problem, layers)
            if accepted is None:  # no decrease possible: stationary (to rounding)
                reason = "stationary"
                break
            params, step, first, layers, fit = accepted
            # Double the step after three epochs in a row that took their first trial:
            # about 1.4 forward passes per epoch (2.05 when doubling every epoch), and
            # tiny steps recover (a rule based on the measured curvature could not).
            calm = calm + 1 if first else 0
        A = params[:n]
        B = params[n] if labels is not None else None
        problem.tally(record.tally, layers)
        record.history.append(fit.cost)
        record.errors.append(_ratio(np.sqrt(fit.error2), norm_x))
        record.steps.append(step)
        record.elapsed.append(time.perf_counter() - start)
        run.progress.update(fit.cost)
        if optimizer != "adam" and calm >= 3:
            step *= 2.0
        if run.callback is not None and run.callback(epoch, A, B, fit.cost):
            reason = "callback"
            break
        if stopped(record.history, options["tol"]):
            reason = "tol"
            break
        if run.deadline.expired():
            reason = "max_time"
            break
    run.progress.close()
    return A, B, layers, record, reason


@dataclass
class _Problem:
    """What stays fixed during training: the data, its norm and column scales."""

    X: np.ndarray
    W: np.ndarray | None
    labels: _Labels | None
    loss: str
    norm_x2: float
    x_exp: np.ndarray

    @classmethod
    def build(cls, X, W, labels, loss) -> _Problem:
        WX = X if W is None or is_sparse(X) else W * X  # sparse X arrives as W * X
        return cls(X, W, labels, loss, sq_norm(WX), _exponent(axis_max(X, 0)))

    def forward(self, A, previous=None):
        """Forward pass, warm-started from ``previous`` (a forward pass) if given."""
        return _forward(A, self.X, self.W, previous, self.x_exp)

    def cost(self, A, B, layers) -> _Fit:
        return _cost(A, B, self.X, layers, self.W, self.labels, self.loss, self.norm_x2)

    def tally(self, tally, layers) -> None:
        for layer in layers:
            tally.add(layer.info, layer.S.shape[1])


def _adam_step(params, grads, moments, lr, epoch):
    """Projected Adam (beta1 = 0.9, beta2 = 0.999); updates ``moments`` in place."""
    new = []
    for (m, v), p, g in zip(moments, params, grads, strict=True):
        m[:] = 0.9 * m + 0.1 * g
        v[:] = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**epoch), v / (1 - 0.999**epoch)
        new.append(np.maximum(p - lr * m_hat / (np.sqrt(v_hat) + 1e-12), 0.0))
    return new


def _first_step(params, grads):
    """A first step that moves the parameters by about 1%."""
    size = np.sqrt(sum(float(np.vdot(p, p)) for p in params))
    slope = np.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    return 0.01 * size / max(slope, np.finfo(float).tiny)


def _backtrack(params, grads, cost, step, problem, layers):
    """Projected gradient step with backtracking.

    Returns the new parameters, the accepted step, whether the first trial was
    accepted, and the forward pass and cost at the new point (reused by the next
    gradient); or None when no step decreases the cost.
    """
    n_layers = len(layers)
    for trial in range(60):
        new = [
            np.maximum(p - step * g, 0.0) for p, g in zip(params, grads, strict=True)
        ]
        moved = [n - p for n, p in zip(new, params, strict=True)]
        decrease = sum(float(np.vdot(g, d)) for g, d in zip(grads, moved, strict=True))
        distance2 = sum(float(np.vdot(d, d)) for d in moved)
        if distance2 == 0.0:
            return None
        A = new[:n_layers]
        B = new[n_layers] if problem.labels is not None else None
        trial_layers = problem.forward(A, layers)
        fit = problem.cost(A, B, trial_layers)
        if fit.cost <= cost + decrease + distance2 / (2 * step):
            return new, step, trial == 0, trial_layers, fit
        step /= 2.0
    return None
