"""Data sets: the Neural NMF paper's three-level block hierarchy, a general generator of
nested block data, and seeded label masks.

Orientation as everywhere in ``nnmf_lib``: ``X`` is N x M with one sample per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_float, check_int, check_random_state
from .ssnmf import one_hot

__all__ = ["BlockData", "hierarchical_blocks", "known_mask", "nested_blocks"]

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
    branching = [check_int(b, "branching[i]") for b in branching]
    if not branching:
        raise ValueError("branching must have at least one level.")
    values = [2.0**i for i in range(len(branching))] if values is None else list(values)
    if len(values) != len(branching):
        raise ValueError(
            f"values must have one entry per level ({len(branching)}); "
            f"got {len(values)}."
        )
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
    labels = np.asarray(labels)
    if labels.shape != (n_samples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an integer array of shape ({n_samples},); "
            f"got {labels.dtype} of shape {labels.shape}."
        )
    for c in np.unique(labels):  # a loop over classes
        members = np.flatnonzero(labels == c)
        count = max(1, round(fraction * members.size)) if fraction > 0 else 0
        known[rng.permutation(members)[:count]] = True
    return known
