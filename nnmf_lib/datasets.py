"""Data sets: the Neural NMF paper's three-level block hierarchy, a general generator of
nested block data, and seeded label masks.

Orientation as everywhere in ``nnmf_lib``: ``X`` is N x M with one sample per column.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._validation import as_integer_array, check_float, check_int, check_random_state
from .ssnmf import one_hot

__all__ = [
    "BlockData",
    "LabelledData",
    "hierarchical_blocks",
    "known_mask",
    "load_digits",
    "load_docstrings",
    "nested_blocks",
]

# The paper's layout (0-based, inclusive ranges): each level is a list of
# (first row, last row, first column, last column) blocks, drawn with its value over
# the previous levels.
PAPER_LEVELS = (
    (1.0, ((0, 36, 0, 31), (37, 86, 32, 89))),
    (
        2.0,
        ((0, 14, 0, 19), (15, 36, 20, 31), (37, 53, 32, 56), (54, 86, 57, 89)),
    ),
    (
        4.0,
        (
            (0, 9, 0, 9),
            (10, 14, 10, 19),
            (15, 24, 20, 24),
            (25, 36, 25, 31),
            (37, 49, 32, 36),
            (50, 53, 37, 56),
            (54, 64, 57, 66),
            (65, 72, 67, 75),
            (73, 86, 76, 89),
        ),
    ),
)


@dataclass
class BlockData:
    """A nested block data set.

    Attributes
    ----------
    X : ndarray, shape (N, M)
        The data: piecewise-constant blocks plus uniform noise.
    X_clean : ndarray, shape (N, M)
        The data without noise.
    labels : dict[int, ndarray]
        For each level's number of classes P, the class (column block) of every sample,
        ``0 .. P-1``. For the paper's set the keys are 2, 4 and 9.
    Y : dict[int, ndarray]
        The same labels one-hot, ``Y[P]`` of shape (P, M).
    row_labels : dict[int, ndarray]
        For each level, the row block of every feature (useful for plotting topics).
    levels : tuple[int, ...]
        The numbers of classes from the coarsest to the finest level.
    """

    X: np.ndarray
    X_clean: np.ndarray
    labels: dict
    Y: dict
    row_labels: dict
    levels: tuple


def _draw(shape, levels, noise, rng):
    """Paint the levels' blocks (later levels overwrite earlier ones), add noise."""
    X_clean = np.zeros(shape)
    labels, row_labels, counts = {}, {}, []
    for value, blocks in levels:
        col_labels = np.full(shape[1], -1)
        rows_of = np.full(shape[0], -1)
        for b, (r0, r1, c0, c1) in enumerate(blocks):
            X_clean[r0 : r1 + 1, c0 : c1 + 1] = value
            col_labels[c0 : c1 + 1] = b
            rows_of[r0 : r1 + 1] = b
        labels[len(blocks)] = col_labels
        row_labels[len(blocks)] = rows_of
        counts.append(len(blocks))
    X = X_clean + noise * rng.random(shape)
    Y = {P: one_hot(lab, P) for P, lab in labels.items()}
    return BlockData(X, X_clean, labels, Y, row_labels, tuple(counts))


def hierarchical_blocks(*, noise: float = 0.15, random_state=None) -> BlockData:
    """The 87 x 90 synthetic data set of the Neural NMF paper (its section 3, Figure 1).

    Two large diagonal blocks of value 1; inside them four blocks of value 2; inside
    those nine blocks of value 4. Each level overwrites the one before (nothing is
    summed), and uniform noise on ``[0, noise)`` is added to every entry. The noiseless
    matrix has rank 9. The labels of a sample (column) are the blocks that contain it at
    each level: 9 classes of sizes 10, 10, 5, 7, 5, 20, 10, 9, 14; 4 classes of sizes
    20, 12, 25, 33; 2 classes of sizes 32, 58.

    Parameters
    ----------
    noise : float, default 0.15
        Width of the uniform noise.
    random_state : None, int or numpy.random.Generator
        Seed of the noise.

    Returns
    -------
    BlockData
        With ``levels == (2, 4, 9)``.
    """
    noise = check_float(noise, "noise")
    rng = check_random_state(random_state)
    return _draw((87, 90), PAPER_LEVELS, noise, rng)


def _split(n: int, parts: int, rng: np.random.Generator, minimum: int) -> np.ndarray:
    """Random sizes of ``parts`` consecutive pieces of ``n`` items, each >= minimum."""
    spare = n - parts * minimum
    cuts = np.sort(rng.integers(0, spare + 1, parts - 1))
    return minimum + np.diff(np.concatenate([[0], cuts, [spare]]))


def nested_blocks(
    n_rows: int = 60,
    n_cols: int = 80,
    branching=(2, 2, 2),
    *,
    values=None,
    noise: float = 0.15,
    min_size: int = 2,
    random_state=None,
) -> BlockData:
    """A general nested block hierarchy, like the paper's data set but of any shape.

    Level 0 splits the rows and the columns into ``branching[0]`` diagonal blocks;
    each block of level l is split again into ``branching[l]`` diagonal sub-blocks, with
    random sizes (at least ``min_size`` rows and columns). Level l is drawn with value
    ``values[l]`` over the previous levels.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of ``X`` (features x samples).
    branching : sequence of int
        Number of children of every block, per level (each at least 1).
    values : sequence of float, optional
        Value of each level; default 1, 2, 4, ... (doubling).
    noise : float, default 0.15
        Width of the uniform noise added to every entry.
    min_size : int, default 2
        Smallest number of rows and of columns of a finest block.
    random_state : None, int or numpy.random.Generator
        Seed of the block sizes and of the noise.

    Returns
    -------
    BlockData
        ``levels`` holds the number of blocks per level, coarsest first.
    """
    n_rows = check_int(n_rows, "n_rows")
    n_cols = check_int(n_cols, "n_cols")
    if isinstance(branching, (str, bytes)) or not hasattr(branching, "__iter__"):
        raise TypeError(
            "branching must be a sequence of integers, one per level (for example "
            f"(2, 3)); got {branching!r}."
        )
    branching = [check_int(b, f"branching[{i}]") for i, b in enumerate(branching)]
    if not branching:
        raise ValueError("branching must have at least one level.")
    values = _level_values(values, len(branching))
    noise = check_float(noise, "noise")
    min_size = check_int(min_size, "min_size")
    leaves = int(np.prod(branching))
    if min(n_rows, n_cols) < leaves * min_size:
        raise ValueError(
            f"n_rows and n_cols must be at least {leaves * min_size} for "
            f"{leaves} finest blocks of at least min_size = {min_size}; "
            f"got {n_rows} x {n_cols}."
        )
    rng = check_random_state(random_state)
    blocks = [(0, n_rows - 1, 0, n_cols - 1)]
    levels = []
    for level, parts in enumerate(branching):
        below = int(np.prod(branching[level + 1 :]))  # finest blocks inside each child
        children = []
        for r0, r1, c0, c1 in blocks:  # a loop over blocks, not over data
            rows = _split(r1 - r0 + 1, parts, rng, below * min_size)
            cols = _split(c1 - c0 + 1, parts, rng, below * min_size)
            re, ce = r0 + np.cumsum(rows), c0 + np.cumsum(cols)
            for rs, rend, cs, cend in zip(re - rows, re, ce - cols, ce, strict=True):
                children.append((int(rs), int(rend) - 1, int(cs), int(cend) - 1))
        blocks = children
        levels.append((float(values[level]), tuple(blocks)))
    return _draw((n_rows, n_cols), levels, noise, rng)


def _level_values(values, n_levels: int) -> list[float]:
    """The value of each level: finite numbers >= 0, one per level (default 1, 2,
    4, ...)."""
    if values is None:
        return [2.0**i for i in range(n_levels)]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(
            f"values must be a sequence of numbers, one per level; got {values!r}."
        )
    values = [check_float(v, f"values[{i}]") for i, v in enumerate(values)]
    if len(values) != n_levels:
        raise ValueError(
            f"values must have one entry per level ({n_levels}); got {len(values)}."
        )
    return values


def known_mask(
    n_samples: int, fraction: float, *, labels=None, random_state=None
) -> np.ndarray:
    """Boolean vector marking a random ``fraction`` of the samples as labelled.

    Without ``labels``, ``round(fraction * n_samples)`` samples are drawn at random.
    With ``labels`` (one integer class per sample), the draw is stratified: each class
    keeps ``round(fraction * size)`` known samples, and at least one, so that no class
    is left without a label. Combine with :func:`nnmf_lib.label_mask` to get the P x M
    mask.
    """
    n_samples = check_int(n_samples, "n_samples")
    fraction = check_float(fraction, "fraction")
    if fraction > 1:
        raise ValueError(f"fraction must be between 0 and 1; got {fraction}.")
    rng = check_random_state(random_state)
    known = np.zeros(n_samples, dtype=bool)
    if labels is None:
        known[rng.permutation(n_samples)[: round(fraction * n_samples)]] = True
        return known
    labels = as_integer_array(
        labels, (n_samples,), "labels", f"of shape ({n_samples},)"
    )
    for c in np.unique(labels):  # a loop over classes
        members = np.flatnonzero(labels == c)
        count = max(1, round(fraction * members.size)) if fraction > 0 else 0
        known[rng.permutation(members)[:count]] = True
    return known


@dataclass
class LabelledData:
    """A real data set, one sample per column.

    Attributes
    ----------
    X : ndarray or scipy.sparse.csr_array, shape (N, M)
        Nonnegative data (pixel intensities, or TF-IDF weights of terms; a text corpus
        may come as a sparse matrix).
    labels : dict[str, ndarray]
        Integer labels of the samples at each level of a hierarchy, coarsest first.
    class_names : dict[str, list[str]]
        The name of each class, per level.
    feature_names : ndarray or None
        The name of each row (the vocabulary of a text corpus).
    sample_names : list[str]
        The name of each column.
    image_shape : tuple or None
        The shape of one sample as an image.
    """

    X: np.ndarray
    labels: dict
    class_names: dict
    feature_names: np.ndarray | None
    sample_names: list
    image_shape: tuple | None


def load_digits() -> LabelledData:
    """scikit-learn's 1797 handwritten digits as a 64 x 1797 matrix in [0, 1].

    The data ship with scikit-learn; nothing is downloaded. One 8 x 8 image per column,
    labelled by its digit (level ``"digit"``).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    names = [str(d) for d in range(10)]
    return LabelledData(
        X=bunch.data.T / 16.0,
        labels={"digit": bunch.target.astype(int)},
        class_names={"digit": names},
        feature_names=None,
        sample_names=[f"image {i}" for i in range(bunch.target.size)],
        image_shape=(8, 8),
    )


# The modules whose public docstrings form the text corpus, by package.
DOCSTRING_MODULES = {
    "numpy": ["numpy.linalg", "numpy.fft", "numpy.random", "numpy.polynomial"],
    "scipy": [
        "scipy.linalg",
        "scipy.optimize",
        "scipy.stats",
        "scipy.signal",
        "scipy.sparse",
        "scipy.integrate",
        "scipy.interpolate",
        "scipy.special",
        "scipy.spatial",
        "scipy.ndimage",
    ],
    "sklearn": [
        "sklearn.linear_model",
        "sklearn.cluster",
        "sklearn.decomposition",
        "sklearn.metrics",
        "sklearn.preprocessing",
        "sklearn.ensemble",
        "sklearn.model_selection",
        "sklearn.neighbors",
    ],
}


def _public_docstrings(module_name: str, min_length: int):
    """(name, docstring) of the public functions and classes of a module, sorted."""
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or dir(module)
    found = []
    for name in sorted(set(names)):
        if name.startswith("_"):
            continue
        try:
            obj = getattr(module, name)
        except (AttributeError, ImportError):  # experimental or removed names
            continue
        if obj is None or inspect.ismodule(obj) or not callable(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        # Drop the code of the examples: prompts and their continuation lines.
        text = "\n".join(
            line
            for line in doc.splitlines()
            if not line.lstrip().startswith((">>>", "..."))
        )
        if len(text) >= min_length:
            found.append((f"{module_name}.{name}", obj, text))
    return found


def load_docstrings(
    *,
    max_per_module: int = 80,
    min_length: int = 200,
    min_df: int = 5,
    max_df: float = 0.3,
    sparse: bool = False,
) -> LabelledData:
    """A text corpus that ships with the installed packages: the docstrings of the
    public functions and classes of 22 modules of numpy, scipy and scikit-learn.

    Each docstring is a document (a column), labelled at two levels: its package
    (``"package"``: numpy, scipy, sklearn) and its module (``"module"``, for example
    ``scipy.linalg``). The matrix holds TF-IDF weights of the vocabulary (rows), with
    every document scaled to unit Euclidean norm.

    Vocabulary filter, in this order: the code of the examples (lines starting with
    ``>>>`` or ``...``) is removed; words are runs of at least three letters,
    lowercased; scikit-learn's English stop words are dropped, and so are the names of
    the packages and modules, which would give the labels away; a word must occur in
    at least ``min_df`` documents and in at most a fraction ``max_df`` of them. An
    object exported by several modules counts once, in the first; a docstring shorter
    than ``min_length`` characters is skipped; modules with more than
    ``max_per_module`` documents keep that many, evenly spaced in alphabetical order.

    The result depends only on the installed versions of numpy, scipy and scikit-learn
    (it is the same on every run with the same versions); nothing is downloaded.

    Parameters
    ----------
    max_per_module : int, default 80
    min_length : int, default 200
    min_df : int, default 5
        ``min_df=1`` keeps the full vocabulary (every word that passes the other
        filters); with ``sparse=True`` its memory is that of the nonzero entries.
    max_df : float, default 0.3
    sparse : bool, default False
        Return ``X`` as a ``scipy.sparse.csr_array`` (every function of the library
        keeps it sparse) instead of a dense array.

    Returns
    -------
    LabelledData
        ``X`` of shape (terms, documents), ``feature_names`` the vocabulary.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    max_per_module = check_int(max_per_module, "max_per_module")
    min_df = check_int(min_df, "min_df")
    max_df = check_float(max_df, "max_df")
    documents, names, packages, modules, seen = [], [], [], [], set()
    module_names = [m for ms in DOCSTRING_MODULES.values() for m in ms]
    with warnings.catch_warnings():  # deprecated aliases warn when touched
        warnings.simplefilter("ignore")
        for p, module_list in enumerate(DOCSTRING_MODULES.values()):
            for module in module_list:
                found = [
                    f
                    for f in _public_docstrings(module, min_length)
                    if id(f[1]) not in seen
                ]
                if len(found) > max_per_module:
                    keep = np.linspace(0, len(found) - 1, max_per_module).round()
                    found = [found[int(i)] for i in keep]
                for name, obj, text in found:
                    seen.add(id(obj))
                    documents.append(text)
                    names.append(name)
                    packages.append(p)
                    modules.append(module_names.index(module))
    hidden = {part for m in module_names for part in m.split(".")} | {
        "sklearn",
        "scikit",
    }
    vectorizer = TfidfVectorizer(
        token_pattern=r"(?u)\b[a-zA-Z]{3,}\b",
        lowercase=True,
        stop_words=sorted(ENGLISH_STOP_WORDS | hidden),
        min_df=min_df,
        max_df=max_df,
    )
    tfidf = vectorizer.fit_transform(documents)  # documents x terms, sparse
    X = sp.csr_array(tfidf.T) if sparse else tfidf.T.toarray()
    return LabelledData(
        X=X,
        labels={"package": np.array(packages), "module": np.array(modules)},
        class_names={"package": list(DOCSTRING_MODULES), "module": module_names},
        feature_names=vectorizer.get_feature_names_out(),
        sample_names=names,
        image_shape=None,
    )
