r"""The teaching versions: each algorithm of the book in a short function that reads
like its pseudocode.

These functions are **slower on purpose**. They loop over columns, solve one small
linear system at a time and recompute what the fast versions cache, so that each fits
on a page next to the chapter's algorithm, with comments naming its steps (for example
``# alg-bpp, step 3.1``). The tests (``tests/test_reference.py``) check that each one
gives the same numbers as its fast counterpart, to 1e-10 relative, or the same optimum
where the answer is not unique. Use the fast versions for real work.

==============================  =================================================
teaching version                fast counterpart
==============================  =================================================
:func:`bpp_column`              :func:`nnmf_lib.nnls` (all columns at once)
:func:`nnls_column_vjp`         :func:`nnmf_lib.nnls_vjp`
:func:`multiplicative_updates`  :func:`nnmf_lib.nmf` with ``method="mu"``
:func:`hals`                    :func:`nnmf_lib.nmf` with ``method="hals"``
:func:`anls`                    :func:`nnmf_lib.nmf` with ``method="anls"``
:func:`ssnmf_updates`           :func:`nnmf_lib.ssnmf`
:func:`hierarchical_nmf`        :func:`nnmf_lib.hnmf`
:func:`pool`, :func:`unpool`    :func:`nnmf_lib.pool`, :func:`nnmf_lib.unpool`
:func:`deep_nmf_sweep`          one refinement sweep of :func:`nnmf_lib.deep_nmf`
:func:`neural_forward`          :func:`nnmf_lib.forward`
:func:`neural_backward`         :func:`nnmf_lib.loss_and_grad`
==============================  =================================================

Names follow the paper: ``X`` data (N x M, one sample per column), ``A`` topics
(N x k), ``S`` coefficients (k x M), ``Y`` labels, ``L`` label mask, ``W`` data mask,
``B`` classifier, ``lam`` the weight of the labels. In the pivoting, ``F`` is the
passive set (the variables free to be positive) and ``V`` the infeasible set.
Inputs are not validated beyond a few asserts.
"""

from __future__ import annotations

import numpy as np

from .nmf import initialize

__all__ = [
    "anls",
    "bpp_column",
    "deep_nmf_sweep",
    "hals",
    "hierarchical_nmf",
    "multiplicative_updates",
    "neural_backward",
    "neural_forward",
    "nnls_column_vjp",
    "pool",
    "ssnmf_updates",
    "unpool",
]

EPS = 1e-16  # floor of the entries in MU and HALS (as in the fast versions)
TINY = np.finfo(float).tiny  # smallest positive float: guards 0/0


def bpp_column(A, x, max_iter=100):
    r"""Block principal pivoting (Kim & Park) for one column: :math:`q(A, x)`.

    Solves :math:`\min_{s \ge 0} \|x - A s\|_2` by guessing the passive set ``F``
    (where :math:`s > 0`), solving least squares on it, and exchanging the infeasible
    variables ``V`` between ``F`` and its complement: all of them while their number
    keeps reaching new lows (at most three times without one), otherwise only the
    largest index (Murty's backup rule, which guarantees termination).

    Parameters
    ----------
    A : ndarray, shape (N, k)
        Nonnegative dictionary.
    x : ndarray, shape (N,)
        One column of data.
    max_iter : int, default 100
        Maximum number of exchanges.

    Returns
    -------
    s : ndarray, shape (k,)
        The minimizer; it satisfies the KKT conditions :math:`s \ge 0`,
        :math:`y = A^\top(As - x) \ge 0`, :math:`s \odot y = 0`.

    Notes
    -----
    Left out, compared with :func:`nnmf_lib.nnls`: all columns at once (grouped by
    passive set, one factorization per group), the scaling of the topics to unit norm
    before the tolerances are applied, warm starts from a given support, data masks,
    and the Lawson-Hanson fallback after ``max_iter`` (here an error). On a singular
    ``C[F, F]`` (duplicated topics) both take a minimum-norm least-squares solution
    (the fast one in the unit-norm scaling), so ``s`` may differ while ``A s`` agrees.

    Examples
    --------
    >>> A = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> bpp_column(A, np.array([2.0, 1.0, -1.0]))
    array([1.5, 0. ])
    """
    assert A.ndim == 2 and x.ndim == 1 and A.shape[0] == x.shape[0]
    k = A.shape[1]
    C, b = A.T @ A, A.T @ x  # alg-bpp, step 1
    F = np.zeros(k, dtype=bool)  # step 2: empty passive set,
    s, y = np.zeros(k), -b  # so s = 0 and the gradient y = C s - b = -b
    alpha, beta = 3, k + 1
    # "Negative" means below a tolerance relative to the column's scale, so that
    # rounding noise in a degenerate problem cannot swap a variable back and forth.
    tol_y = 1e-12 * max(np.abs(b).max(initial=0.0), TINY)
    tol_s = tol_y / max(np.abs(C).max(initial=0.0), TINY)
    for _ in range(max_iter):
        V = (F & (s < -tol_s)) | (~F & (y < -tol_y))  # step 3: infeasible set
        if not V.any():
            return np.maximum(s, 0.0)  # step 4 (clears -tol_s < s < 0)
        if V.sum() < beta:  # step 3.1: a new low, full exchange
            beta, alpha = V.sum(), 3
            F = F ^ V
        elif alpha >= 1:  # step 3.2: no new low, but patience left
            alpha -= 1
            F = F ^ V
        else:  # step 3.3: Murty's rule, exchange only the largest index
            F[np.flatnonzero(V)[-1]] ^= True
        # Step 3.4: least squares on F, C[F, F] s_F = b_F (minimum-norm if singular).
        s = np.zeros(k)
        s[F] = np.linalg.lstsq(C[np.ix_(F, F)], b[F], rcond=None)[0]
        y = C @ s - b
        y[F] = 0.0
    raise RuntimeError(f"bpp_column: no solution after max_iter={max_iter} exchanges")


def nnls_column_vjp(A, x, s, g):
    r"""Derivative of :math:`\ell = \langle g, q(A, x)\rangle` for one column.

    With the support :math:`T = \{i : s_i > 0\}`, the residual
    :math:`r = x - A_T s_T` and :math:`z` solving :math:`(A_T^\top A_T) z = g_T`,

    .. math::
        \frac{\partial \ell}{\partial x} = A_T z, \qquad
        \frac{\partial \ell}{\partial A_{:,T}} = r z^\top - (A_T z) s_T^\top, \qquad
        \frac{\partial \ell}{\partial A_{:,j}} = 0 \ (j \notin T).

    This is the derivative where the support is locally constant (strict
    complementarity and :math:`A_T` of full column rank); elsewhere it is one-sided.

    Parameters
    ----------
    A : ndarray, shape (N, k)
    x : ndarray, shape (N,)
    s : ndarray, shape (k,)
        ``bpp_column(A, x)``.
    g : ndarray, shape (k,)
        Upstream gradient :math:`\partial \ell / \partial s`.

    Returns
    -------
    dA : ndarray, shape (N, k)
    dx : ndarray, shape (N,)

    Notes
    -----
    Left out, compared with :func:`nnmf_lib.nnls_vjp`: all columns at once (one
    factorization per distinct support), data masks, and the warning when
    :math:`A_T` is rank-deficient (here, silently, the minimum-norm ``z``).
    """
    T = s > 0  # the support: thm-nnls-vjp holds it fixed
    A_T = A[:, T]
    z = np.linalg.lstsq(A_T.T @ A_T, g[T], rcond=None)[0]  # (A_T^T A_T) z = g_T
    dx = A_T @ z  # dl/dx = A_T z
    r = x - A_T @ s[T]  # residual, orthogonal to the columns of A_T
    dA = np.zeros_like(A)
    dA[:, T] = np.outer(r, z) - np.outer(dx, s[T])  # dl/dA_T = r z^T - (A_T z) s_T^T
    return dA, dx


def _unit_topics(A, S):
    """Scale the columns of A to unit norm and push the scales into the rows of S."""
    d = np.linalg.norm(A, axis=0)
    d[d == 0] = 1.0  # a zero topic stays zero
    return A / d, S * d[:, None]


def multiplicative_updates(X, A, S, n_iter):
    r"""Lee-Seung multiplicative updates for :math:`\min_{A,S\ge0} \|X - AS\|_F^2`.

    Each iteration updates ``A``, then ``S`` (equation eq-mu of the NMF chapter):

    .. math::
        A \leftarrow A \odot \frac{X S^\top}{A S S^\top}, \qquad
        S \leftarrow S \odot \frac{A^\top X}{A^\top A S},

    each followed by a floor at :math:`\epsilon = 10^{-16}`, so that no entry locks at
    zero. Neither update increases the objective.

    Parameters
    ----------
    X : ndarray, shape (N, M)
        Nonnegative data, one sample per column.
    A : ndarray, shape (N, k)
        Starting topics.
    S : ndarray, shape (k, M)
        Starting coefficients.
    n_iter : int
        Number of iterations.

    Returns
    -------
    A : ndarray, shape (N, k)
        Topics scaled to unit norm, as :func:`nnmf_lib.nmf` returns them.
    S : ndarray, shape (k, M)
        Coefficients, with the scales of the topics moved into them.

    Notes
    -----
    Left out, compared with ``nmf(X, k, method="mu", init=(A, S))``: the data mask,
    the objective history and the stopping rule (here exactly ``n_iter`` iterations),
    and the guard against a zero denominator (impossible here: every entry is at least
    :math:`\epsilon`). Same start, same number of iterations: the same factors.
    """
    A, S = np.maximum(A, EPS), np.maximum(S, EPS)  # a zero entry would stay zero
    for _ in range(n_iter):
        A = np.maximum(EPS, A * (X @ S.T) / (A @ (S @ S.T)))  # eq-mu, A-step
        S = np.maximum(EPS, S * (A.T @ X) / ((A.T @ A) @ S))  # eq-mu, S-step
    return _unit_topics(A, S)  # remove the scaling freedom


def hals(X, A, S, n_iter):
    r"""HALS: exact minimization over one row of ``S``, then one column of ``A``.

    For :math:`\min_{A,S\ge0} \|X - AS\|_F^2`. With :math:`P = A^\top X` and
    :math:`Q = A^\top A`, row :math:`j` of ``S`` is the exact minimizer with every other
    row fixed,

    .. math::
        S_{j,:} \leftarrow \max\Big(\epsilon,\
            S_{j,:} + \frac{P_{j,:} - Q_{j,:} S}{Q_{jj}}\Big),

    and the columns of ``A`` are updated the same way with :math:`R = X S^\top`,
    :math:`T = S S^\top`. Rows already updated are used at once (Gauss-Seidel).

    Parameters
    ----------
    X : ndarray, shape (N, M)
        Nonnegative data.
    A : ndarray, shape (N, k)
        Starting topics (not modified).
    S : ndarray, shape (k, M)
        Starting coefficients (not modified).
    n_iter : int
        Number of iterations (each a sweep over the rows of ``S``, then the columns
        of ``A``).

    Returns
    -------
    A : ndarray, shape (N, k)
        Topics scaled to unit norm.
    S : ndarray, shape (k, M)

    Notes
    -----
    Left out, compared with ``nmf(X, k, method="hals", init=(A, S))``: the data mask,
    the objective history and the stopping rule. A row whose :math:`Q_{jj}` is zero (a
    zero topic) is skipped, as there.
    """
    A, S = A.copy(), S.copy()
    k = A.shape[1]
    for _ in range(n_iter):
        P, Q = A.T @ X, A.T @ A  # Gram form: the data are read once per sweep
        for j in range(k):  # rows of S, in turn
            if Q[j, j] > 0:
                S[j] = np.maximum(EPS, S[j] + (P[j] - Q[j] @ S) / Q[j, j])
        R, T = X @ S.T, S @ S.T
        for j in range(k):  # columns of A, in turn
            if T[j, j] > 0:
                # T[j] @ A.T is A T[:, j] (T is symmetric), computed as nmf() does.
                A[:, j] = np.maximum(EPS, A[:, j] + (R[:, j] - T[j] @ A.T) / T[j, j])
    return _unit_topics(A, S)


def anls(X, A, S, n_iter):
    r"""Alternating nonnegative least squares: exact in ``S``, then exact in ``A``.

    For :math:`\min_{A,S\ge0} \|X - AS\|_F^2`. Each iteration solves

    .. math::
        S \leftarrow q(A, X), \qquad A \leftarrow q(S^\top, X^\top)^\top,

    column by column with :func:`bpp_column`: the columns of ``S`` one sample at a
    time, then the rows of ``A`` one feature at a time.

    Parameters
    ----------
    X : ndarray, shape (N, M)
        Nonnegative data.
    A : ndarray, shape (N, k)
        Starting topics.
    S : ndarray, shape (k, M)
        Starting coefficients: unused here, since the first step computes ``S`` from
        ``A`` (the fast version uses their support as a warm start). Kept so that the
        three NMF methods are interchangeable.
    n_iter : int
        Number of iterations.

    Returns
    -------
    A : ndarray, shape (N, k)
        Topics scaled to unit norm.
    S : ndarray, shape (k, M)

    Notes
    -----
    Left out, compared with ``nmf(X, k, method="anls", init=(A, S))``: warm starts
    from the previous supports (they change the work, not the answer), the batching
    of all columns, the objective history and the stopping rule. Where a subproblem
    has several minimizers (a zero or repeated row of ``S``), the two versions may
    pick different ones with the same objective.
    """
    N, M = X.shape
    for _ in range(n_iter):
        S = np.column_stack([bpp_column(A, X[:, m]) for m in range(M)])  # S-step
        A = np.vstack([bpp_column(S.T, X[n]) for n in range(N)])  # A-step, row n
    return _unit_topics(A, S)


def ssnmf_updates(X, Y, A, B, S, lam=1.0, W=None, L=None, n_iter=100):
    r"""Semi-supervised NMF by the Lee-Yoo-Choi multiplicative updates.

    Decreases :math:`\|W \odot (X - AS)\|_F^2 + \lambda \|L \odot (Y - BS)\|_F^2` over
    :math:`A, B, S \ge 0` by updating ``A``, then ``B``, then ``S``:

    .. math::
        A &\leftarrow A \odot \frac{(W\odot X) S^\top}{(W \odot AS) S^\top}, \qquad
        B \leftarrow B \odot \frac{(L\odot Y) S^\top}{(L \odot BS) S^\top}, \\
        S &\leftarrow S \odot \frac{A^\top (W\odot X) + \lambda B^\top (L \odot Y)}
                                  {A^\top (W\odot AS) + \lambda B^\top (L\odot BS)},

    each floored at :math:`\epsilon = 10^{-16}`.

    Parameters
    ----------
    X : ndarray, shape (N, M)
        Nonnegative data.
    Y : ndarray, shape (P, M)
        One-hot labels.
    A : ndarray, shape (N, k)
    B : ndarray, shape (P, k)
    S : ndarray, shape (k, M)
        Starting factors.
    lam : float, default 1.0
        Weight of the classification term.
    W : ndarray of {0, 1}, shape (N, M), optional
        Data mask (default: all observed).
    L : ndarray of {0, 1}, shape (P, M), optional
        Label mask (default: all labels known).
    n_iter : int, default 100

    Returns
    -------
    A : ndarray, shape (N, k)
        Topics scaled to unit norm.
    B : ndarray, shape (P, k)
        Classifier, scaled to match (``B @ S`` is unchanged by the scaling).
    S : ndarray, shape (k, M)

    Notes
    -----
    Left out, compared with ``ssnmf(X, k, Y, init=(A, S), B0=B)``: the objective
    history and the stopping rule, and the products in Gram form without a mask (the
    fast version computes :math:`A (S S^\top)` when ``W`` is absent; the result agrees
    to rounding error).
    """
    W = np.ones_like(X) if W is None else W
    L = np.ones_like(Y) if L is None else L
    A, B, S = np.maximum(A, EPS), np.maximum(B, EPS), np.maximum(S, EPS)
    WX, LY = W * X, L * Y  # the masked data never change
    for _ in range(n_iter):
        # A-step: NMF update of the masked reconstruction term alone.
        A = np.maximum(EPS, A * (WX @ S.T) / np.maximum((W * (A @ S)) @ S.T, TINY))
        # B-step: the same update for the classification term (a row of L may be 0).
        B = np.maximum(EPS, B * (LY @ S.T) / np.maximum((L * (B @ S)) @ S.T, TINY))
        # S-step: negative part of the gradient over its positive part.
        numerator = A.T @ WX + lam * (B.T @ LY)
        denominator = A.T @ (W * (A @ S)) + lam * (B.T @ (L * (B @ S)))
        S = np.maximum(EPS, S * numerator / np.maximum(denominator, TINY))
    d = np.linalg.norm(A, axis=0)  # unit topics; B absorbs the inverse scales
    return A / d, B / d, S * d[:, None]


def hierarchical_nmf(X, ranks, method, n_iter=100, Y=None, L=None, lam=1.0, B=None):
    r"""Hierarchical NMF: NMF of the data, then NMF of each layer's coefficients.

    With :math:`S^{(-1)} = X`, layer :math:`\ell = 0, \dots, \mathcal L` factors
    :math:`S^{(\ell-1)} \approx A^{(\ell)} S^{(\ell)}` with :math:`k^{(\ell)}` topics,
    greedily (nothing flows back), so that
    :math:`X \approx A^{(0)} \cdots A^{(\ell)} S^{(\ell)}` after every layer. With
    labels ``Y``, the last layer is semi-supervised (:func:`ssnmf_updates`).

    Parameters
    ----------
    X : ndarray, shape (N, M)
        Nonnegative data.
    ranks : list of int
        ``[k_0, ..., k_L]``, non-increasing.
    method : callable
        The NMF of each layer: :func:`multiplicative_updates`, :func:`hals` or
        :func:`anls`.
    n_iter : int, default 100
        Iterations per layer.
    Y, L, lam :
        Labels (P x M), label mask and weight for the last layer (optional).
    B : ndarray, shape (P, k_L), optional
        Starting classifier; required with ``Y``.

    Returns
    -------
    A : list of ndarray
        ``A[l]`` of shape (k_{l-1}, k_l), unit-norm columns.
    S : list of ndarray
        ``S[l]`` of shape (k_l, M).
    B : ndarray or None
        The classifier of the last layer, when labels are given.

    Notes
    -----
    Every layer starts from :func:`nnmf_lib.initialize` (NNDSVDa), as
    ``hnmf(X, ranks, method=..., max_iter=n_iter, tol=0)`` does. (For data with more
    than 200 rows and columns, NNDSVDa uses a randomized SVD, so the start then
    depends on the random state.) Left out: the data mask, the stopping rule (here
    exactly ``n_iter`` iterations per layer), the random classifier start (``B`` is
    given), and the per-layer errors and histories.
    """
    assert Y is None or B is not None, "a starting classifier B is needed with Y"
    A, S = [], []
    data = X  # alg-hnmf, step 1: S^(-1) = X
    for layer, k in enumerate(ranks):  # step 2: one independent NMF per layer
        A0, S0 = initialize(data, k)  # NNDSVDa start
        if Y is not None and layer == len(ranks) - 1:  # semi-supervised last layer
            a, B, s = ssnmf_updates(data, Y, A0, B, S0, lam, None, L, n_iter)
        else:
            a, s = method(data, A0, S0, n_iter)
        A.append(a)
        S.append(s)
        data = s  # the coefficients are the next layer's data
    return A, S, B  # step 3


def pool(S, radius, segments=None):
    r"""Max-pooling of each row of ``S`` over neighbouring columns, by loops.

    :math:`p(S)_{ij} = \max_{j'} S_{ij'}` over :math:`j' \in \{j-r, \dots, j+r\}` in the
    segment of :math:`j` (equation eq-pool of the Deep NMF chapter).

    Parameters
    ----------
    S : ndarray, shape (k, M)
    radius : int
        Half-width ``r`` of the window.
    segments : ndarray of int, shape (M,), optional
        Windows never cross from one segment to another (default: one segment).

    Returns
    -------
    P : ndarray, shape (k, M)
        The pooled matrix.
    where : ndarray of int, shape (k, M)
        The column ``j'`` of each maximum (ties keep the first one found, starting
        with ``j`` itself).

    Notes
    -----
    The fast :func:`nnmf_lib.pool` loops over the ``2r + 1`` offsets only, with every
    row and column at once; the answer is identical.
    """
    k, M = S.shape
    seg = np.zeros(M, dtype=int) if segments is None else segments
    P, where = S.copy(), np.tile(np.arange(M), (k, 1))  # start from j itself
    for i in range(k):
        for j in range(M):
            for jj in range(max(0, j - radius), min(M, j + radius + 1)):
                if seg[jj] == seg[j] and S[i, jj] > P[i, j]:
                    P[i, j], where[i, j] = S[i, jj], jj
    return P, where


def unpool(Z, where):
    r"""Unpooling, the adjoint of pooling with the maxima held fixed, by loops.

    :math:`U(Z)_{ij'} = \sum_{j : a_i(j) = j'} Z_{ij}`: each entry goes back to the
    column its maximum came from.

    Parameters
    ----------
    Z : ndarray, shape (k, M)
    where : ndarray of int, shape (k, M)
        Positions of the maxima, from :func:`pool`.

    Returns
    -------
    ndarray, shape (k, M)

    Notes
    -----
    The fast :func:`nnmf_lib.unpool` does the same sums with one ``np.bincount``.
    """
    U = np.zeros_like(Z)
    k, M = Z.shape
    for i in range(k):
        for j in range(M):
            U[i, where[i, j]] += Z[i, j]
    return U


def deep_nmf_sweep(X, A, S, B=None, Y=None, L=None, lam=1.0, radius=1, segments=None):
    r"""One refinement sweep of Deep NMF: multiplicative updates, layer by layer.

    Decreases, one block at a time and with the pooling maxima held fixed, the energy

    .. math::
        E = \sum_{\ell=0}^{\mathcal L} \|X^{(\ell)} - A^{(\ell)} S^{(\ell)}\|_F^2
            + \lambda \|L \odot (Y - B S^{(\mathcal L)})\|_F^2,
        \qquad X^{(0)} = X, \quad X^{(\ell+1)} = p(S^{(\ell)}).

    For :math:`\ell = 0, \dots, \mathcal L` (bottom-up): update :math:`S^{(\ell)}`
    (coupled to layer :math:`\ell+1` through unpooling :math:`U_\ell`, or to the labels
    at the last layer), then :math:`A^{(\ell)}` by the NMF update, then the next
    layer's input :math:`p(S^{(\ell)})`; finally the classifier ``B``.

    Parameters
    ----------
    X : ndarray, shape (N, M)
        Nonnegative data.
    A, S : list of ndarray
        ``A[l]`` (k_{l-1} x k_l) and ``S[l]`` (k_l x M), for example from the forward
        pass of :func:`nnmf_lib.deep_nmf` (``max_iter=0``). Not modified.
    B : ndarray, shape (P, k_L), optional
        Classifier (with ``Y``, ``L`` and ``lam``).
    Y, L : ndarray, shape (P, M), optional
        Labels and label mask.
    lam : float, default 1.0
    radius : int, default 1
        Pooling radius.
    segments : ndarray of int, shape (M,), optional
        Segments for the pooling.

    Returns
    -------
    A, S : list of ndarray
        The updated factors.
    B : ndarray or None

    Notes
    -----
    Left out, compared with :func:`nnmf_lib.deep_nmf`: the forward pass (NMF of every
    layer, pooled in between), the energy history and the stopping rule. Starting from
    the same forward pass, ``n`` calls give the factors of ``deep_nmf`` with
    ``max_iter=n``.
    """
    A, S = list(A), list(S)
    top = len(A) - 1
    x = X  # X^(0)
    for l in range(top + 1):  # bottom-up, one layer at a time
        numerator, denominator = A[l].T @ x, (A[l].T @ A[l]) @ S[l]
        if l < top:  # layer l+1 fits p(S^(l)): its maxima are held fixed
            pooled, where = pool(S[l], radius, segments)  # X^(l+1), a_i(j)
            numerator = numerator + unpool(A[l + 1] @ S[l + 1], where)
            denominator = denominator + unpool(pooled, where)
        elif B is not None:  # the last layer also fits the known labels
            numerator = numerator + lam * (B.T @ (L * Y))
            denominator = denominator + lam * (B.T @ (L * (B @ S[l])))
        S[l] = np.maximum(EPS, S[l] * numerator / np.maximum(denominator, TINY))
        a, s = A[l], S[l]  # the NMF update of A^(l), with the new S^(l)
        A[l] = np.maximum(EPS, a * (x @ s.T) / np.maximum(a @ (s @ s.T), TINY))
        x = pool(S[l], radius, segments)[0]  # X^(l+1) = p(S^(l)), new maxima
    if B is not None:  # the classifier: NMF update of the masked label term
        s, LY = S[top], L * Y
        B = np.maximum(EPS, B * (LY @ s.T) / np.maximum((L * (B @ s)) @ s.T, TINY))
    return A, S, B


def neural_forward(A, X):
    r"""Forward propagation of Neural NMF, one column at a time.

    :math:`S^{(\ell)} = q(A^{(\ell)}, S^{(\ell-1)})` for :math:`\ell = 0, \dots,
    \mathcal L`, with :math:`S^{(-1)} = X` (equation eq-forward): every column of every
    layer is one call of :func:`bpp_column`.

    Parameters
    ----------
    A : list of ndarray
        ``A[0]`` (N x k_0), ``A[1]`` (k_0 x k_1), ..., nonnegative.
    X : ndarray, shape (N, M)
        Nonnegative data.

    Returns
    -------
    list of ndarray
        ``S[l]`` of shape (k_l, M).

    Notes
    -----
    Left out, compared with :func:`nnmf_lib.forward`: all columns of a layer at once,
    warm starts from previous supports, and the data mask.
    """
    S, data = [], X  # S^(-1) = X
    for a in A:  # eq-forward, layer by layer
        M = data.shape[1]
        data = np.column_stack([bpp_column(a, data[:, m]) for m in range(M)])
        S.append(data)
    return S


def neural_backward(A, X, S, Y=None, L=None, B=None, lam=1.0):
    r"""Cost of Neural NMF and its gradient, by one reverse sweep through the layers.

    The cost is eq-cost of the Neural NMF chapter, the paper's equation (7) when
    ``lam = 1``:

    .. math::
        C = \|X - A^{(0)} \cdots A^{(\mathcal L)} S^{(\mathcal L)}\|_F^2
            + \lambda \|L \odot (Y - B S^{(\mathcal L)})\|_F^2 .

    First the direct terms (every :math:`S` held fixed), then the reverse sweep: from
    :math:`g = \partial C / \partial S^{(\mathcal L)}`, each layer, top down, adds
    :func:`nnls_column_vjp` of every column to its gradient and passes the derivative
    with respect to its input down to the layer below.

    Parameters
    ----------
    A : list of ndarray
        Dictionaries ``A[0]`` (N x k_0), ..., ``A[L]`` (k_{L-1} x k_L).
    X : ndarray, shape (N, M)
        Nonnegative data.
    S : list of ndarray
        ``neural_forward(A, X)``.
    Y, L : ndarray, shape (P, M), optional
        Labels and label mask (``L`` is required with ``Y``).
    B : ndarray, shape (P, k_L), optional
        Classifier (required with ``Y``).
    lam : float, default 1.0
        Weight of the classification term.

    Returns
    -------
    cost : float
    grads : list of ndarray
        ``grads[l]`` is :math:`\partial C / \partial A^{(\ell)}`, shaped like ``A[l]``.
    grad_B : ndarray or None
        :math:`\partial C / \partial B`, when labels are given.

    Notes
    -----
    Left out, compared with :func:`nnmf_lib.loss_and_grad`: the batching over columns
    (one factorization per support), the energy loss, the data mask, and the warning
    for rank-deficient supports.
    """
    depth, N = len(A), X.shape[0]
    P = [np.eye(N)]  # P[l] = A^(0) ... A^(l-1): the layers below layer l
    for a in A:
        P.append(P[-1] @ a)
    R = X - P[-1] @ S[-1]  # residual of the whole product
    cost, grads, grad_B = float(np.sum(R**2)), [], None
    for l in range(depth):  # eq-chain, direct terms: every S held fixed
        Q = S[-1]  # Q = A^(l+1) ... A^(L) S^(L): the layers above layer l
        for a in reversed(A[l + 1 :]):
            Q = a @ Q
        grads.append(-2 * P[l].T @ R @ Q.T)
    g = -2 * P[-1].T @ R  # dC/dS^(L), with every A held fixed
    if Y is not None:  # the classification term acts on S^(L) and B only
        E = L * (Y - B @ S[-1])
        cost += lam * float(np.sum(E**2))
        g = g - 2 * lam * (B.T @ E)
        grad_B = -2 * lam * (E @ S[-1].T)
    for l in reversed(range(depth)):  # the reverse sweep, top down
        x = X if l == 0 else S[l - 1]  # the input of layer l
        g_in = np.zeros_like(x)
        for m in range(x.shape[1]):  # eq-column-derivative, column by column
            dA, g_in[:, m] = nnls_column_vjp(A[l], x[:, m], S[l][:, m], g[:, m])
            grads[l] += dA  # the U terms of eq-chain
        g = g_in  # dC/dS^(l-1): the next factor of Phi^T
    return cost, grads, grad_B
