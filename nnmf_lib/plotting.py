"""Figures for hierarchical factorizations: factor heat maps, topic hierarchy diagrams
and image grids. Every function draws with matplotlib and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from ._validation import as_layers, as_matrix, check_float, check_int

__all__ = ["factor_heatmaps", "image_grid", "order_topics", "topic_hierarchy"]


def order_topics(A) -> list[np.ndarray]:
    """Reorder the topics of every layer for display, without changing the model.

    The topics of ``A[0]`` are sorted by the row where they peak; the topics of each
    later layer by the (already sorted) topic where they peak. Returns the permuted
    matrices: ``A[l]`` has its rows and columns permuted consistently, so that the
    product ``A[0] @ ... @ A[l]`` has the same columns as before, in the new order.
    """
    layers = as_layers(A)
    out, previous = [], None
    for a in layers:
        if previous is not None:
            a = a[previous]
        order = np.argsort(np.argmax(a, axis=0), kind="stable")
        out.append(a[:, order])
        previous = order
    return out


def factor_heatmaps(A, *, ordered: bool = True, cmap: str = "Greys", titles=None):
    """Heat maps of the factors ``A[0], ..., A[L]`` side by side (the paper's Fig. 3).

    Parameters
    ----------
    A : list of array_like
        Factor matrices with chaining shapes.
    ordered : bool, default True
        Reorder the topics with :func:`order_topics` so that the structure is visible.
    cmap : str
        A matplotlib colour map.
    titles : list of str, optional
        One title per matrix (default: ``A^(l)`` with its shape).
    """
    layers = order_topics(A) if ordered else as_layers(A)
    if titles is not None and len(titles) != len(layers):
        raise ValueError(f"titles must have {len(layers)} entries; got {len(titles)}.")
    widths = [1.4] + [1.0] * (len(layers) - 1)
    fig, axes = plt.subplots(
        1,
        len(layers),
        figsize=(3.4 * len(layers), 3.8),
        gridspec_kw={"width_ratios": widths},
    )
    for i, (ax, a) in enumerate(zip(np.atleast_1d(axes), layers, strict=True)):
        ax.imshow(a, aspect="auto", cmap=cmap, interpolation="nearest")
        title = (
            titles[i]
            if titles is not None
            else f"$A^{{({i})}}$: {a.shape[0]} x {a.shape[1]}"
        )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("topic" if i == 0 else "supertopic")
    fig.tight_layout()
    return fig


def image_grid(
    columns,
    image_shape,
    *,
    row_labels=None,
    n_cols: int | None = None,
    cmap: str = "gray_r",
    signed: bool = False,
):
    """Show the columns of one or more matrices as images, one row of images per matrix.

    Parameters
    ----------
    columns : array_like or list of array_like
        A matrix (pixels x images), or a list of such matrices with the same number of
        images (for example originals and reconstructions).
    image_shape : tuple of int
        The shape of one image; its product must equal the number of rows.
    row_labels : list of str, optional
        A label per matrix.
    n_cols : int, optional
        Show only the first ``n_cols`` images of each matrix.
    signed : bool, default False
        Use a diverging colour map centred at zero (for components with both signs).
    """
    matrices = columns if isinstance(columns, (list, tuple)) else [columns]
    matrices = [as_matrix(m, "columns") for m in matrices]
    size = int(np.prod(image_shape))
    for m in matrices:
        if m.shape[0] != size:
            raise ValueError(
                f"image_shape {tuple(image_shape)} has {size} pixels, but the columns "
                f"have {m.shape[0]} rows."
            )
    count = min(m.shape[1] for m in matrices)
    if n_cols is not None:
        count = min(count, check_int(n_cols, "n_cols"))
    fig, axes = plt.subplots(
        len(matrices),
        count,
        figsize=(1.1 * count + 1.2, 1.2 * len(matrices)),
        squeeze=False,
    )
    for r, m in enumerate(matrices):
        for c in range(count):
            ax = axes[r, c]
            image = m[:, c].reshape(image_shape)
            if signed:
                lim = max(np.abs(image).max(), np.finfo(float).tiny)
                ax.imshow(image, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.imshow(image, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def topic_hierarchy(
    A,
    *,
    feature_names=None,
    image_shape=None,
    n_words: int = 4,
    min_weight: float = 0.2,
    layer_names=None,
):
    """Diagram of a topic hierarchy: one column of nodes per layer, left to right.

    A node is a topic of layer l: the column j of ``A[0] @ ... @ A[l]``, its profile
    over the original features, shown by its ``n_words`` largest features (text) or as
    an image. An edge joins topic i of layer l to supertopic j of layer l + 1, with a
    width proportional to ``A[l+1][i, j]`` divided by the largest entry of column j;
    edges below ``min_weight`` are not drawn. Within a layer, nodes are placed at the
    weighted mean height of their supertopics, which keeps edges short.

    Parameters
    ----------
    A : list of array_like
        Factor matrices ``A[0]`` (features x k_0), ``A[1]`` (k_0 x k_1), ...
    feature_names : sequence of str, optional
        Name of every feature (row of ``A[0]``), for text.
    image_shape : tuple of int, optional
        Shape of a feature profile as an image, for images. Exactly one of
        ``feature_names`` and ``image_shape`` must be given.
    n_words : int, default 4
        Words per text node.
    min_weight : float, default 0.2
        Relative weight below which an edge is not drawn.
    layer_names : list of str, optional
        A title per layer.
    """
    layers = as_layers(A)
    if (feature_names is None) == (image_shape is None):
        raise ValueError("give exactly one of feature_names (text) and image_shape.")
    n_features = layers[0].shape[0]
    if feature_names is not None:
        feature_names = np.asarray(feature_names, dtype=str)
        if feature_names.shape != (n_features,):
            raise ValueError(
                f"feature_names must have {n_features} entries (the rows of A[0]); "
                f"got {feature_names.shape[0] if feature_names.ndim else 0}."
            )
    elif int(np.prod(image_shape)) != n_features:
        raise ValueError(
            f"image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} pixels, "
            f"but A[0] has {n_features} rows."
        )
    n_words = check_int(n_words, "n_words")
    min_weight = check_float(min_weight, "min_weight")

    profiles, product = [], None
    for a in layers:
        product = a if product is None else product @ a
        profiles.append(product)
    weights = [
        a / np.maximum(a.max(axis=0, keepdims=True), np.finfo(float).tiny)
        for a in layers[1:]
    ]

    # Heights: the top layer evenly, every lower layer at its parents' weighted mean.
    heights = [None] * len(layers)
    top = layers[-1].shape[1]
    heights[-1] = np.linspace(0, 1, top) if top > 1 else np.array([0.5])
    for level in range(len(layers) - 2, -1, -1):
        w = weights[level]
        mean = (w @ heights[level + 1]) / np.maximum(
            w.sum(axis=1), np.finfo(float).tiny
        )
        order = np.argsort(mean, kind="stable")
        k = w.shape[0]
        heights[level] = np.empty(k)
        heights[level][order] = np.linspace(0, 1, k) if k > 1 else 0.5

    tallest = max(a.shape[1] for a in layers)
    spacing = 0.42 if feature_names is not None else 0.8  # inches per node
    fig, ax = plt.subplots(figsize=(4.2 * len(layers), max(3.0, spacing * tallest)))
    for level, w in enumerate(weights):  # edges first, under the nodes
        for i, j in zip(*np.nonzero(w >= min_weight), strict=True):
            ax.plot(
                [level, level + 1],
                [heights[level][i], heights[level + 1][j]],
                color="tab:blue",
                alpha=0.6,
                lw=0.5 + 3.5 * w[i, j],
                zorder=1,
            )
    for level, profile in enumerate(profiles):
        for j in range(profile.shape[1]):
            y = heights[level][j]
            if feature_names is not None:
                top_words = feature_names[np.argsort(profile[:, j])[::-1][:n_words]]
                ax.text(
                    level,
                    y,
                    " ".join(top_words),
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    zorder=2,
                    bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="0.6"),
                )
            else:
                image = OffsetImage(
                    profile[:, j].reshape(image_shape), zoom=4.5, cmap="gray_r"
                )
                ax.add_artist(
                    AnnotationBbox(image, (level, y), frameon=True, pad=0.1, zorder=2)
                )
    names = layer_names or [
        f"layer {level}: {a.shape[1]} topics" for level, a in enumerate(layers)
    ]
    ax.set_xticks(range(len(layers)), names)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
