"""Input checks shared by every public function of :mod:`nnmf_lib`.

Every check either returns a float64 (or boolean) array that the caller may read but
must not modify, or raises ``ValueError``/``TypeError`` with a message that names the
argument and says what is wrong with it.
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings

import numpy as np
import scipy.sparse as sp

from ._sparse import SparseMask, coordinates

__all__ = [
    "AccuracyWarning",
    "ConvergenceWarning",
    "FitWarning",
    "RankDeficiencyWarning",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` (or ``max_epochs``, or
    ``max_time``) before meeting its tolerance, or met it at a fit worse than zero."""


class FitWarning(UserWarning):
    """A fitted model approximates the data worse than the zero matrix does (a
    relative error above 1), usually because of an option that does not suit the
    data (for :func:`nnmf_lib.deep_nmf`, pooling over samples in no meaningful
    order)."""


class RankDeficiencyWarning(UserWarning):
    """A least-squares system on a support was singular; a pseudoinverse was used."""


class AccuracyWarning(UserWarning):
    """A result misses the accuracy its function promises (for :func:`nnmf_lib.nnls`,
    a verified KKT residual of 1e-10), usually because the data are too
    ill-conditioned for double precision."""


def as_matrix(X, name: str, *, nonnegative: bool = False, where=None) -> np.ndarray:
    """Return ``X`` as a 2-D, finite float64 array (without copying when possible).

    Lists and integer, boolean or float32 arrays are converted to float64; a scipy
    sparse matrix is converted to a dense array (this is for the factors, which are
    small: data that may stay sparse go through :func:`as_data`). A numpy masked array
    with masked entries is refused (missing entries have no meaning here). With a
    boolean ``where`` of the same shape, only those entries are checked for finiteness
    and sign.

    Raises
    ------
    TypeError
        If ``X`` is not numeric (strings, objects, complex numbers).
    ValueError
        If ``X`` is not 2-D, is empty, has NaN or infinite entries, or has a
        negative entry while ``nonnegative`` is set.
    """
    arr = _as_array(X, name)
    if where is None:  # fast path: two passes, no temporaries (NaN propagates)
        low, high = arr.min(), arr.max()
        if np.isfinite(low) and np.isfinite(high) and (low >= 0 or not nonnegative):
            return arr
    checked = np.ones(arr.shape, dtype=bool) if where is None else where
    finite = np.isfinite(arr) | ~checked
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise ValueError(
            f"{name} contains {_count(int((~finite).sum()), 'NaN or infinite entry')} "
            f"(the first at row {bad[0]}, column {bad[1]})."
        )
    if nonnegative:
        negative = (arr < 0) & checked
        if negative.any():
            i, j = np.unravel_index(np.argmin(np.where(negative, arr, 0.0)), arr.shape)
            raise ValueError(
                f"{name} must be nonnegative; it has "
                f"{_count(int(negative.sum()), 'negative entry')} (the smallest is "
                f"{arr[i, j]:.3g} at row {i}, column {j})."
            )
    return arr


def _count(n: int, thing: str) -> str:
    """``"1 negative entry"``, ``"3 negative entries"``."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing[:-1]}ies"


def _as_array(X, name: str) -> np.ndarray:
    """A 2-D, nonempty float64 array from an array-like (type and shape checks)."""
    if sp.issparse(X):
        X = X.toarray()
    if isinstance(X, np.ma.MaskedArray):
        n = int(np.ma.count_masked(X))
        if n:
            hint = (
                ", or give data with missing entries to a function that takes a data "
                "mask W (nnls, nmf with method='mu' or 'hals', ssnmf, hnmf, neural_nmf)"
                if name.startswith("X")
                else ""
            )
            raise ValueError(
                f"{name} is a masked array with {_count(n, 'masked entry')}, but "
                f"{name} cannot have missing entries here: fill them in (for example "
                f"{name}.filled(0)){hint}."
            )
        X = np.ma.getdata(X)
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{name} must be a 2-D array of numbers; {err}") from None
    _check_real_2d(arr, name)
    return arr.astype(np.float64, copy=False)


def as_masked_data(X, W):
    """Data ``X`` with an optional 0/1 mask ``W`` (1 = observed).

    Returns ``X`` as float64 with the unobserved entries set to 0 (so they may hold
    anything on input, NaN included), and ``W`` as a float 0/1 array (or None). Only
    the observed entries must be finite and nonnegative.

    A numpy masked array ``X`` means ``W = ~X.mask`` (None if nothing is masked); a
    ``W`` given with it must agree. A sparse ``X`` stays sparse (see :func:`as_data`)
    and its mask becomes a :class:`~nnmf_lib._sparse.SparseMask`: ``W`` may then be a
    dense boolean or 0/1 array, or a scipy.sparse 0/1 matrix whose stored ones are the
    observed entries; ``X`` is returned as ``W * X`` (its unobserved stored entries
    dropped).
    """
    if isinstance(X, np.ma.MaskedArray):
        X, W = unmask(X, W)
    if sp.issparse(X):
        X = _as_sparse(X, "X")
        if sp.issparse(X):  # sparse enough to stay sparse
            mask = None if W is None else sparse_mask(W, X.shape)
            if mask is not None:
                X = mask.restrict(X)
            _check_sparse_values(X, "X", nonnegative=True)
            return X, mask
    if W is None:
        return as_matrix(X, "X", nonnegative=True), None
    arr = _as_array(X, "X")
    mask = as_mask(W, arr.shape, "W")
    arr = as_matrix(arr, "X", nonnegative=True, where=mask)
    return np.where(mask, arr, 0.0), mask.astype(float)


def unmask(X: np.ma.MaskedArray, W):
    """The data and the mask ``~X.mask`` of a masked array (checked against ``W``)."""
    observed = ~np.ma.getmaskarray(X)
    data = np.ma.getdata(X)
    if W is None:
        return data, (None if observed.all() else observed)
    given = as_mask(W, observed.shape, "W")
    differ = int(np.count_nonzero(given != observed))
    if differ:
        raise ValueError(
            f"W disagrees with the mask of the masked array X at "
            f"{_count(differ, 'entry')}: W must be 1 exactly where X is not masked "
            "(W = ~X.mask); give only one of them."
        )
    return data, W


# A sparse matrix with at least this fraction of its entries stored is converted to a
# dense array: 8 bytes per entry dense against 12 (value and index) sparse, so the
# dense form is no larger, and dense products are faster.
_DENSE_ENOUGH = 2 / 3


def as_data(X, name: str = "X", *, nonnegative: bool = True):
    """Data that may be sparse: a scipy.sparse ``X`` is kept sparse (see
    :func:`_as_sparse`), anything else goes through :func:`as_matrix`."""
    if sp.issparse(X):
        X = _as_sparse(X, name)
        if sp.issparse(X):
            _check_sparse_values(X, name, nonnegative)
            return X
    return as_matrix(X, name, nonnegative=nonnegative)


def _check_real_2d(X, name: str) -> None:
    """Raise unless ``X`` (a numpy array or a scipy.sparse matrix) is a nonempty 2-D
    array of real numbers."""
    if X.dtype == object or not (
        np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)
    ):
        raise TypeError(
            f"{name} must be an array of real numbers; got dtype {X.dtype}."
        )
    if np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array; got an array of shape {X.shape}."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one row and one column; got shape {X.shape}."
        )


def _as_sparse(X, name: str):
    """A scipy.sparse matrix as canonical float64 CSR (sorted indices, no duplicates;
    the input itself when it is one already), or as a dense array when at least 2/3
    of its entries are stored. Type and shape checks only; never calls ``toarray``."""
    _check_real_2d(X, name)
    if X.format != "csr":
        X = X.tocsr()  # a new matrix; duplicates of COO are summed
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if X.dtype != np.float64:
        X = X.astype(np.float64)
    if X.nnz >= _DENSE_ENOUGH * X.shape[0] * X.shape[1]:
        dense = np.zeros(X.shape)
        dense[coordinates(X)] = X.data
        return dense
    return X


def _check_sparse_values(X, name: str, nonnegative: bool) -> None:
    """The checks of :func:`as_matrix` on the stored entries of a canonical CSR ``X``,
    with the same messages (positions in row-major order)."""
    data = X.data
    if data.size == 0:
        return
    low, high = data.min(), data.max()
    if np.isfinite(low) and np.isfinite(high) and (low >= 0 or not nonnegative):
        return
    rows, cols = coordinates(X)
    bad = ~np.isfinite(data)
    if bad.any():
        first = np.flatnonzero(bad)[0]
        raise ValueError(
            f"{name} contains {_count(int(bad.sum()), 'NaN or infinite entry')} "
            f"(the first at row {rows[first]}, column {cols[first]})."
        )
    i = int(np.argmin(data))  # the first smallest entry, in row-major order
    raise ValueError(
        f"{name} must be nonnegative; it has "
        f"{_count(int((data < 0).sum()), 'negative entry')} (the smallest is "
        f"{data[i]:.3g} at row {rows[i]}, column {cols[i]})."
    )


def sparse_mask(W, shape) -> SparseMask:
    """A data mask for sparse data: from a SparseMask, a dense boolean or 0/1 array, or
    a scipy.sparse 0/1 matrix (its stored ones are the observed entries)."""
    if isinstance(W, SparseMask):
        if W.shape != tuple(shape):
            raise ValueError(f"W must have shape {tuple(shape)}; got {W.shape}.")
        return W
    if not sp.issparse(W):
        return SparseMask.from_dense(as_mask(W, shape, "W"))
    if W.shape != tuple(shape):
        raise ValueError(f"W must have shape {tuple(shape)}; got {W.shape}.")
    W = W.tocsr()
    if not W.has_canonical_format:
        W = W.copy()
        W.sum_duplicates()
    values = as_mask(W.data[None, :], (1, W.nnz), "W")[0]  # 0/1 (or boolean) values
    rows, cols = coordinates(W)
    return SparseMask.from_pattern(rows[values], cols[values], shape, observed=True)


def as_labels(Y, L, n_samples: int, *, required: bool = False):
    """Labels ``Y`` (P x M, nonnegative, usually one-hot) and their 0/1 mask ``L``.

    Returns ``(Y, L)`` as float arrays, with ``L`` all ones when not given and the
    unknown columns of ``Y`` set to 0 (so they may hold anything on input, NaN
    included), or ``(None, None)`` when ``Y`` is None and not ``required``.
    """
    if Y is None:
        if required:
            raise TypeError("Y (the labels) is required.")
        if L is not None:
            raise ValueError("L (the label mask) was given without labels Y.")
        return None, None
    arr = _as_array(Y, "Y")
    if arr.shape[1] != n_samples:
        raise ValueError(
            "Y must have one column per column of X: "
            f"X has {n_samples}, Y has {arr.shape[1]}."
        )
    mask = np.ones(arr.shape, dtype=bool) if L is None else as_mask(L, arr.shape, "L")
    arr = as_matrix(arr, "Y", nonnegative=True, where=mask)
    return np.where(mask, arr, 0.0), mask.astype(float)


def check_shape(
    arr: np.ndarray, shape: tuple[int, int], name: str, expected: str
) -> None:
    """Raise ``ValueError`` unless ``arr.shape == shape``; ``expected`` says why."""
    if arr.shape != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} ({expected}); got {arr.shape}."
        )


def check_same_rows(
    A: np.ndarray, X: np.ndarray, name_a: str = "A", name_x: str = "X"
) -> None:
    """Raise ``ValueError`` unless ``A`` and ``X`` have the same number of rows."""
    if A.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name_a} and {name_x} must have the same number of rows: "
            f"{name_a} has {A.shape[0]}, {name_x} has {X.shape[0]}."
        )


def as_mask(mask, shape: tuple[int, int], name: str) -> np.ndarray:
    """Return a boolean array of the given shape from a boolean or 0/1 array."""
    if sp.issparse(mask):
        mask = mask.toarray()
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {arr.shape}.")
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(
        arr.dtype, np.complexfloating
    ):
        raise TypeError(
            f"{name} must be a boolean or 0/1 array; got dtype {arr.dtype}."
        )
    binary = (arr == 0) | (arr == 1)
    if not binary.all():
        bad = arr[~binary].ravel()[0]
        raise ValueError(
            f"{name} must contain only 0 and 1 (or booleans); found the value {bad}."
        )
    return arr == 1


def as_layers(A, rows: int | None = None, *, nonnegative: bool = True) -> list:
    """The dictionaries ``A[0], ..., A[L]``: a nonempty list (or tuple) of finite
    matrices whose shapes chain (``A[l]`` has as many rows as ``A[l-1]`` has columns,
    and ``A[0]`` has ``rows`` rows when ``rows`` is given)."""
    if isinstance(A, np.ndarray) or not isinstance(A, (list, tuple)) or not A:
        raise TypeError(
            "A must be a nonempty list of matrices A[0], ..., A[L]; got "
            f"{type(A).__name__}."
        )
    layers = [as_matrix(a, f"A[{i}]", nonnegative=nonnegative) for i, a in enumerate(A)]
    for i, a in enumerate(layers):
        expected = rows if i == 0 else layers[i - 1].shape[1]
        if expected is not None and a.shape[0] != expected:
            source = "the rows of X" if i == 0 else f"the columns of A[{i - 1}]"
            raise ValueError(
                f"A[{i}] must have {expected} rows ({source}); got {a.shape[0]}."
            )
    return layers


def as_integer_array(values, shape: tuple, name: str, described: str) -> np.ndarray:
    """An integer array of the given shape; ``described`` completes the message
    "``name`` must be an integer array ...", e.g. "of shape (10,)"."""
    arr = np.asarray(values)
    if arr.shape != tuple(shape) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer array {described}; got shape {arr.shape} "
            f"and dtype {arr.dtype}."
        )
    return arr


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}.")
    return int(value)


def warn(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the user's line: the first frame of the call
    stack outside ``nnmf_lib``, however deeply the library's functions are nested."""
    frame, level = sys._getframe(1), 2  # level 2 is the caller of warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def check_random_state(random_state) -> np.random.Generator:
    """Return a numpy Generator from None, an int seed or a Generator."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        if random_state < 0:
            raise ValueError(f"random_state must be nonnegative; got {random_state}.")
        return np.random.default_rng(int(random_state))
    raise TypeError(
        "random_state must be None, an int or a numpy.random.Generator; "
        f"got {type(random_state).__name__}."
    )


def check_float(value, name: str, *, minimum: float = 0.0) -> float:
    """Return ``value`` as a float, raising unless it is finite and >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    value = float(value)
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:g}; got {value}.")
    return value


def check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}."
        )
    return value


def check_rank(k, X: np.ndarray, name: str = "k") -> int:
    """A factorization rank: an integer between 1 and min(X.shape)."""
    k = check_int(k, name, minimum=1)
    if k > min(X.shape):
        raise ValueError(
            f"{name} must be at most min(N, M) = {min(X.shape)} for data of shape "
            f"{X.shape}; got {k}."
        )
    return k


def check_ranks(ranks, X: np.ndarray) -> list[int]:
    """Layer ranks ``[k_0, ..., k_L]``: integers >= 1, ``k_0 <= min(N, M)``, and each
    at most the one before (a layer factors the k_{l-1} x M coefficients below it)."""
    if isinstance(ranks, numbers.Integral) or not hasattr(ranks, "__len__"):
        raise TypeError(f"ranks must be a sequence of integers; got {ranks!r}.")
    if len(ranks) == 0:
        raise ValueError("ranks must have at least one layer.")
    ranks = [check_int(k, f"ranks[{i}]") for i, k in enumerate(ranks)]
    if ranks[0] > min(X.shape):
        raise ValueError(
            f"ranks[0] must be at most min(N, M) = {min(X.shape)} for data of shape "
            f"{X.shape}; got {ranks[0]}."
        )
    for i in range(1, len(ranks)):
        if ranks[i] > ranks[i - 1]:
            raise ValueError(
                f"ranks[{i}] = {ranks[i]} exceeds ranks[{i - 1}] = {ranks[i - 1]}: a "
                "layer cannot have more topics than the layer it factors has rows."
            )
    return ranks
