"""Tests of nnmf_lib.datasets: the paper's layout, the generator, the label masks."""

from __future__ import annotations

import numpy as np
import pytest

from nnmf_lib import hierarchical_blocks, known_mask, nested_blocks


def test_paper_layout_values_rank_and_class_sizes():
    data = hierarchical_blocks(random_state=0)
    assert data.X.shape == (87, 90) and data.levels == (2, 4, 9)
    assert set(np.unique(data.X_clean)) == {0.0, 1.0, 2.0, 4.0}
    assert np.linalg.matrix_rank(data.X_clean) == 9
    sizes = {P: np.bincount(data.labels[P]).tolist() for P in data.levels}
    assert sizes == {
        2: [32, 58],
        4: [20, 12, 25, 33],
        9: [10, 10, 5, 7, 5, 20, 10, 9, 14],
    }
    rows = {P: np.bincount(data.row_labels[P]).tolist() for P in data.levels}
    assert rows == {
        2: [37, 50],
        4: [15, 22, 17, 33],
        9: [10, 5, 10, 12, 13, 4, 11, 8, 14],
    }
    # Later levels overwrite earlier ones: inside a 9-block the value is 4, and a few
    # documented entries (0-based) have their level's value.
    assert (
        data.X_clean[0, 0] == 4
        and data.X_clean[14, 0] == 2
        and data.X_clean[36, 0] == 1
    )
    assert (
        data.X_clean[37, 0] == 0
        and data.X_clean[86, 89] == 4
        and data.X_clean[53, 40] == 4
    )
    # Labels are nested: every 9-class lies inside one 4-class, inside one 2-class.
    for fine, coarse in [(9, 4), (4, 2)]:
        for c in range(fine):
            assert len(set(data.labels[coarse][data.labels[fine] == c])) == 1
    for P in data.levels:
        assert np.array_equal(data.Y[P].argmax(axis=0), data.labels[P])
        assert data.Y[P].shape == (P, 90) and data.Y[P].sum() == 90


def test_paper_noise_is_uniform_and_seeded():
    a = hierarchical_blocks(random_state=1)
    b = hierarchical_blocks(random_state=1)
    c = hierarchical_blocks(random_state=2)
    assert np.array_equal(a.X, b.X) and not np.array_equal(a.X, c.X)
    noise = a.X - a.X_clean
    assert noise.min() >= 0 and noise.max() < 0.15
    assert abs(noise.mean() - 0.075) < 0.003
    assert np.array_equal(hierarchical_blocks(noise=0.0).X, a.X_clean)


def test_svd_floors_of_the_paper_data():
    """Best rank-k relative errors quoted in the book (spec 6.1)."""
    s = np.linalg.svd(hierarchical_blocks(random_state=0).X, compute_uv=False)
    floors = {k: np.sqrt(np.sum(s[k:] ** 2) / np.sum(s**2)) for k in (9, 4, 2)}
    assert floors[9] == pytest.approx(0.0236, abs=1e-3)
    assert floors[4] == pytest.approx(0.2816, abs=2e-3)
    assert floors[2] == pytest.approx(0.4676, abs=2e-3)


@pytest.mark.parametrize("branching", [(2,), (2, 2), (3, 2, 2), (2, 1, 3)])
def test_nested_blocks_structure(branching):
    data = nested_blocks(70, 90, branching, random_state=3)
    counts = np.cumprod(branching).tolist()
    assert list(data.levels) == counts
    assert np.linalg.matrix_rank(data.X_clean) == counts[-1]
    for fine, coarse in zip(counts[1:], counts[:-1], strict=True):
        for c in range(fine):
            assert len(set(data.labels[coarse][data.labels[fine] == c])) == 1
    assert np.bincount(data.labels[counts[-1]]).min() >= 2
    again = nested_blocks(70, 90, branching, random_state=3)
    assert np.array_equal(data.X, again.X)


def test_nested_blocks_values_and_validation():
    data = nested_blocks(20, 30, (2, 2), values=(3.0, 5.0), noise=0.0, random_state=0)
    assert set(np.unique(data.X_clean)) <= {0.0, 3.0, 5.0}
    with pytest.raises(ValueError, match="values must have one entry per level"):
        nested_blocks(20, 30, (2, 2), values=(1.0,))
    with pytest.raises(ValueError, match="n_rows and n_cols must be at least 16"):
        nested_blocks(10, 30, (2, 2, 2), min_size=2)
    with pytest.raises(ValueError, match="branching must have at least one level"):
        nested_blocks(10, 30, ())
    with pytest.raises(ValueError, match=r"branching\[1\] must be at least 1"):
        nested_blocks(10, 30, (2, 0))
    with pytest.raises(TypeError, match="branching must be a sequence of integers"):
        nested_blocks(10, 30, 3)
    with pytest.raises(ValueError, match=r"values\[0\] must be a finite number >= 0"):
        nested_blocks(20, 30, (2, 2), values=(np.nan, 1.0))
    with pytest.raises(ValueError, match=r"values\[1\] must be a finite number >= 0"):
        nested_blocks(20, 30, (2, 2), values=(1.0, -2.0))
    with pytest.raises(TypeError, match="values must be a sequence of numbers"):
        nested_blocks(20, 30, (2, 2), values=5)


def test_known_mask():
    known = known_mask(90, 0.4, random_state=0)
    assert known.dtype == bool and known.sum() == 36
    assert np.array_equal(known, known_mask(90, 0.4, random_state=0))
    assert not np.array_equal(known, known_mask(90, 0.4, random_state=1))
    assert known_mask(10, 0.0).sum() == 0 and known_mask(10, 1.0).all()
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        known_mask(10, 1.5)
    with pytest.raises(ValueError, match="fraction must be a finite number >= 0"):
        known_mask(10, -0.1)


def test_known_mask_stratified():
    data = hierarchical_blocks(random_state=0)
    known = known_mask(90, 0.4, labels=data.labels[9], random_state=0)
    per_class = np.bincount(data.labels[9][known], minlength=9)
    sizes = np.bincount(data.labels[9])
    assert np.array_equal(per_class, np.maximum(1, np.round(0.4 * sizes)).astype(int))
    assert np.all(per_class >= 1)
    tiny = known_mask(90, 0.01, labels=data.labels[9], random_state=0)
    assert np.all(np.bincount(data.labels[9][tiny], minlength=9) == 1)
    with pytest.raises(
        ValueError, match=r"labels must be an integer array of shape \(90,\)"
    ):
        known_mask(90, 0.4, labels=np.zeros(10, dtype=int))


def test_load_digits():
    from nnmf_lib.datasets import load_digits

    data = load_digits()
    assert data.X.shape == (64, 1797) and data.image_shape == (8, 8)
    assert data.X.min() == 0 and data.X.max() == 1
    assert np.bincount(data.labels["digit"]).sum() == 1797
    assert data.class_names["digit"] == [str(d) for d in range(10)]


def test_load_docstrings_is_deterministic_and_documented(monkeypatch):
    import socket

    from nnmf_lib.datasets import DOCSTRING_MODULES, load_docstrings

    def no_network(*args, **kwargs):
        raise AssertionError("the loader must not use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    data = load_docstrings()
    again = load_docstrings()
    assert np.array_equal(data.X, again.X)
    assert list(data.feature_names) == list(again.feature_names)
    n_terms, n_docs = data.X.shape
    assert n_docs == len(data.sample_names) > 500 and n_terms > 1000
    assert np.allclose(np.linalg.norm(data.X, axis=0), 1.0)  # unit-norm documents
    assert (data.X >= 0).all()
    # every module is a class, nested in its package
    modules = [m for ms in DOCSTRING_MODULES.values() for m in ms]
    assert data.class_names["module"] == modules
    for name, module, package in zip(
        data.sample_names, data.labels["module"], data.labels["package"], strict=True
    ):
        assert name.startswith(modules[module] + ".")
        assert modules[module].split(".")[0] == data.class_names["package"][package]
    # the filter: no label names, no short tokens, document frequencies in range
    vocab = set(data.feature_names)
    assert not vocab & {"numpy", "scipy", "sklearn", "linalg", "stats", "cluster"}
    assert all(len(w) >= 3 and w.isalpha() and w.islower() for w in vocab)
    df = (data.X > 0).sum(axis=1)
    assert df.min() >= 5 and df.max() <= 0.3 * n_docs
    assert np.bincount(data.labels["module"]).max() <= 80
