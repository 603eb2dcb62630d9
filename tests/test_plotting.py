"""Tests of nnmf_lib.plotting: what each figure contains, inputs left untouched, and
clear errors for inconsistent inputs. Rendered with the Agg backend (no screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.offsetbox import AnnotationBbox

from nnmf_lib.plotting import (
    factor_heatmaps,
    image_grid,
    order_topics,
    topic_hierarchy,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def factors(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((16, 6)), rng.random((6, 3))]


def test_order_topics_keeps_the_product_up_to_column_order():
    A = factors()
    B = order_topics(A)
    product, reordered = A[0] @ A[1], B[0] @ B[1]
    assert sorted(map(tuple, np.round(product.T, 12))) == sorted(
        map(tuple, np.round(reordered.T, 12))
    )
    assert np.all(np.diff(np.argmax(B[0], axis=0)) >= 0)  # topics sorted by peak row


def test_factor_heatmaps_draws_one_panel_per_layer():
    A = factors()
    copies = [a.copy() for a in A]
    fig = factor_heatmaps(A)
    assert len(fig.axes) == 2 and all(len(ax.images) == 1 for ax in fig.axes)
    assert all(np.array_equal(a, c) for a, c in zip(A, copies, strict=True))
    with pytest.raises(ValueError, match="titles must have 2 entries"):
        factor_heatmaps(A, titles=["one"])


def test_topic_hierarchy_text_nodes_and_edges():
    A = factors()
    words = [f"w{i}" for i in range(16)]
    fig = topic_hierarchy(A, feature_names=words, n_words=3, min_weight=0.0)
    ax = fig.axes[0]
    assert len(ax.texts) == 6 + 3  # one text box per topic and supertopic
    assert len(ax.lines) == 6 * 3  # every edge drawn at min_weight 0
    top = words[int(np.argmax(A[0][:, 0]))]
    assert any(t.get_text().startswith(top) for t in ax.texts)
    fig = topic_hierarchy(A, feature_names=words, min_weight=1.0)
    assert len(fig.axes[0].lines) == 3  # only each supertopic's strongest edge


def test_topic_hierarchy_image_nodes():
    A = factors()
    fig = topic_hierarchy(A, image_shape=(4, 4))
    boxes = [a for a in fig.axes[0].artists if isinstance(a, AnnotationBbox)]
    assert len(boxes) == 9


def test_topic_hierarchy_validation():
    A = factors()
    with pytest.raises(ValueError, match="give exactly one of feature_names"):
        topic_hierarchy(A)
    with pytest.raises(ValueError, match="feature_names must have 16 entries"):
        topic_hierarchy(A, feature_names=["a", "b"])
    with pytest.raises(ValueError, match=r"image_shape \(3, 3\) has 9 pixels"):
        topic_hierarchy(A, image_shape=(3, 3))
    with pytest.raises(ValueError, match=r"A\[1\] must have 6 rows"):
        topic_hierarchy([A[0], np.ones((5, 2))], image_shape=(4, 4))
    with pytest.raises(TypeError, match="A must be a nonempty list"):
        topic_hierarchy(A[0], image_shape=(4, 4))


def test_image_grid():
    rng = np.random.default_rng(1)
    X = rng.random((16, 5))
    fig = image_grid([X, X - 0.5], (4, 4), row_labels=["a", "b"], n_cols=3, signed=True)
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match=r"image_shape \(3, 3\) has 9 pixels"):
        image_grid(X, (3, 3))
