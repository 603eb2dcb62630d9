"""Run control (nnmf_lib/_run.py) in every iterative function: warnings at the caller's
line, time budgets, clipped pooling radii, extreme data scales, progress bars, and the
argument checks of issue "every run bounded, observable and honest"."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import factors, next_line, quiet

from nnmf_lib import (
    ConvergenceWarning,
    FitWarning,
    deep_nmf,
    hierarchical_blocks,
    hnmf,
    nested_blocks,
    neural_nmf,
    nmf,
    nnls,
    one_hot,
    pool,
    ssnmf,
)


@pytest.fixture(scope="module")
def blocks():
    return hierarchical_blocks(random_state=0)


def assert_at(rec, line: int) -> None:
    """Every recorded warning points at this file, the first one at ``line``."""
    assert rec, "no warning was issued"
    assert [w.filename for w in rec] == [__file__] * len(rec)
    assert rec[0].lineno == line


# Warnings: a budget reached without meeting the tolerance, at the user's line.


@pytest.mark.parametrize("method", ["mu", "hals", "anls"])
def test_nmf_warns_at_max_iter_at_the_callers_line(blocks, method):
    with pytest.warns(ConvergenceWarning, match="stopped at max_iter=3") as rec:
        line = next_line()
        res = nmf(blocks.X, 5, method=method, max_iter=3, tol=0)
    assert_at(rec, line)
    assert not res.converged and res.stop_reason == "max_iter"


def test_ssnmf_warns_at_max_iter_at_the_callers_line(blocks):
    with pytest.warns(ConvergenceWarning, match="ssnmf stopped at max_iter=3") as rec:
        line = next_line()
        res = ssnmf(blocks.X, 4, blocks.Y[4], max_iter=3, random_state=0)
    assert_at(rec, line)
    assert res.stop_reason == "max_iter"


def test_hnmf_warns_per_layer_at_the_callers_line(blocks):
    with pytest.warns(ConvergenceWarning, match="hnmf layer [12]/2") as rec:
        line = next_line()
        res = hnmf(blocks.X, [9, 4], max_iter=3)
    assert_at(rec, line)
    assert len(rec) == 2
    assert not res.converged and res.stop_reason == "max_iter"


def test_deep_nmf_warns_at_the_callers_line(blocks):
    with pytest.warns(ConvergenceWarning, match="deep_nmf") as rec:
        line = next_line()
        res = deep_nmf(blocks.X, [9, 4], max_iter=2, tol=0, forward_iter=3)
    assert_at(rec, line)
    assert "deep_nmf stopped at max_iter=2" in str(rec[-1].message)
    assert res.stop_reason == "max_iter"


def test_neural_nmf_warns_at_max_epochs_at_the_callers_line(blocks):
    with pytest.warns(ConvergenceWarning, match="max_epochs=3") as rec:
        line = next_line()
        res = neural_nmf(blocks.X, [4, 2], max_epochs=3, random_state=0)
    assert_at(rec, line)
    assert not res.converged and res.stop_reason == "max_epochs"


def test_converged_runs_do_not_warn(blocks):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = nmf(blocks.X, 9, tol=1e-3)
    assert res.converged and res.stop_reason == "tol"


def test_deep_nmf_warns_when_pooling_shuffled_samples_is_worse_than_zero(blocks):
    X = blocks.X[:, np.random.default_rng(0).permutation(blocks.X.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(FitWarning, match="radius=0, or order the samples") as rec:
            line = next_line()
            res = deep_nmf(X, [9, 4], random_state=0)
    assert_at(rec, line)
    assert res.errors[-1] > 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        calm = quiet(deep_nmf, X, [9, 4], radius=0, random_state=0)
    assert calm.errors[-1] < 1


# Bounds: the pooling radius, init_max_iter and max_time.


def test_pool_clips_a_huge_radius_at_the_number_of_samples():
    S = np.random.default_rng(0).random((3, 10))
    start = time.perf_counter()
    pooled, _ = pool(S, 10**6)
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(pooled, pool(S, 9)[0])
    np.testing.assert_array_equal(pooled, np.repeat(S.max(axis=1)[:, None], 10, 1))
    assert np.array_equal(pool(np.ones((3, 10)), 10**6)[0], np.ones((3, 10)))


@pytest.mark.filterwarnings("ignore::nnmf_lib.FitWarning")  # one window: all samples
def test_deep_nmf_with_a_huge_radius_finishes_promptly(blocks):
    X = blocks.X[:, :40]
    start = time.perf_counter()
    big = quiet(deep_nmf, X, [3, 2], radius=10**5, max_iter=20, random_state=0)
    assert time.perf_counter() - start < 10.0
    same = quiet(deep_nmf, X, [3, 2], radius=39, max_iter=20, random_state=0)
    np.testing.assert_array_equal(big.S[0], same.S[0])


@pytest.mark.parametrize(
    "function, args",
    [
        (nmf, (5,)),
        (ssnmf, (4, "Y")),
        (hnmf, ([9, 4],)),
        (deep_nmf, ([9, 4],)),
        (neural_nmf, ([9, 4],)),
    ],
)
def test_max_time_stops_cleanly_warns_and_says_so(blocks, function, args):
    args = tuple(blocks.Y[4] if a == "Y" else a for a in args)
    kw = dict(max_epochs=10**6) if function is neural_nmf else dict(max_iter=10**6)
    if function is deep_nmf:  # a long forward pass, cut by the budget
        kw["forward_iter"] = 10**6
    start = time.perf_counter()
    with pytest.warns(ConvergenceWarning, match="max_time") as rec:
        line = next_line()
        res = function(blocks.X, *args, tol=0, max_time=0.3, random_state=0, **kw)
    assert time.perf_counter() - start < 5.0
    assert_at([w for w in rec if "max_time" in str(w.message)], line)
    assert res.stop_reason == "max_time" and not res.converged


def test_neural_nmf_init_max_iter_bounds_the_hnmf_start(blocks):
    short = quiet(neural_nmf, blocks.X, [9, 4], max_epochs=0, init_max_iter=2)
    start = quiet(hnmf, blocks.X, [9, 4], max_iter=2)
    for a, b in zip(short.A, start.A, strict=True):
        np.testing.assert_array_equal(a, b)


# Scale: data from 1e-250 to 1e250 are fitted alike and never "converge" above 1.


@pytest.mark.parametrize("scale", [1e-250, 1e-40, 1e40, 1e250])
@pytest.mark.parametrize("method", ["mu", "hals", "anls"])
def test_nmf_fits_data_of_any_scale(blocks, method, scale):
    ref = quiet(nmf, blocks.X, 5, method=method, max_iter=300)
    res = quiet(nmf, blocks.X * scale, 5, method=method, max_iter=300)
    assert res.relative_error < 1.02 * ref.relative_error + 1e-3
    assert np.isfinite(res.S).all() and np.isfinite(res.A).all()
    assert res.relative_error <= 1 or not res.converged
    error = np.linalg.norm(res.A @ (res.S / scale) - blocks.X)  # scaled back
    np.testing.assert_allclose(
        error / np.linalg.norm(blocks.X), res.relative_error, rtol=1e-6
    )


@pytest.mark.parametrize("scale", [1e-250, 1e250])
def test_every_iterative_function_fits_data_of_extreme_scale(blocks, scale):
    # lam weighs the labels against ||X||^2, so lam=1 at 1e-250 is a problem about
    # labels only; lam=0 keeps the reconstruction comparable across scales.
    X = blocks.X * scale
    fits = {
        "ssnmf": quiet(ssnmf, X, 9, blocks.Y[4], lam=0.0, random_state=0),
        "hnmf": quiet(hnmf, X, [9, 4], random_state=0),
        "deep": quiet(deep_nmf, X, [9, 4], radius=0, random_state=0),
        "neural": quiet(neural_nmf, X, [9, 4], max_epochs=5, random_state=0),
    }
    fit = fits["ssnmf"]
    error = np.linalg.norm(fit.A @ (fit.S / scale) - blocks.X)
    assert error < 0.1 * np.linalg.norm(blocks.X)
    assert np.isfinite(fit.B).all()
    assert fits["hnmf"].errors[-1] < 0.5 and fits["deep"].errors[-1] < 0.5
    assert fits["neural"].errors[-1] < 0.5
    product = fits["neural"].approximation() / scale
    assert np.linalg.norm(product - blocks.X) < 0.5 * np.linalg.norm(blocks.X)


@pytest.mark.parametrize("scale", [1e-250, 1e250])
def test_supervised_fits_of_extreme_data_stay_finite(blocks, scale):
    Y = blocks.Y[4]
    for fit in (
        quiet(ssnmf, blocks.X * scale, 9, Y, random_state=0),
        quiet(deep_nmf, blocks.X * scale, [9, 4], Y=Y, radius=0, random_state=0),
        quiet(neural_nmf, blocks.X * scale, [9, 4], Y=Y, max_epochs=3),
    ):
        assert all(np.isfinite(m).all() for m in factors(fit))


def test_sparse_data_of_extreme_scale():
    X = sp.random(60, 50, density=0.2, random_state=1, format="csr")
    ref = quiet(nmf, X, 4, max_iter=200)
    res = quiet(nmf, X * 1e-200, 4, max_iter=200)
    assert abs(res.relative_error - ref.relative_error) < 0.02


def test_converged_is_never_reported_with_an_error_above_one(blocks):
    for scale in (1e-40, 1.0, 1e40):
        for method in ("mu", "hals"):
            res = quiet(nmf, blocks.X * scale, 5, method=method)
            assert not (res.converged and res.relative_error > 1)


# Progress: verbose shows a bar with the cost; nothing is printed without it.


@pytest.mark.parametrize(
    "function, args, kw",
    [
        (nmf, (5,), {}),
        (ssnmf, (4, "Y"), {}),
        (hnmf, ([9, 4],), {}),
        (deep_nmf, ([9, 4],), dict(max_iter=5)),
        (neural_nmf, ([9, 4],), dict(max_epochs=3)),
    ],
)
def test_verbose_shows_progress_and_silence_is_the_default(
    blocks, capsys, monkeypatch, function, args, kw
):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the book build sets it
    args = tuple(blocks.Y[4] if a == "Y" else a for a in args)
    quiet(function, blocks.X, *args, random_state=0, **kw)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    quiet(function, blocks.X, *args, random_state=0, verbose=True, **kw)
    out, err = capsys.readouterr()
    assert "cost=" in err
    if function is neural_nmf:  # every phase: the hNMF start, then the epochs
        assert "neural_nmf start, hnmf layer 1/2" in err
        assert "epoch" in err


def test_verbose_does_not_change_the_result(blocks):
    a = quiet(nmf, blocks.X, 5, max_iter=50)
    b = quiet(nmf, blocks.X, 5, max_iter=50, verbose=True)
    np.testing.assert_array_equal(a.A, b.A)


# Validation: messages name the argument.


def test_one_hot_checks_n_classes():
    with pytest.raises(TypeError, match="n_classes must be an integer"):
        one_hot([0, 1], n_classes=2.0)
    with pytest.raises(ValueError, match="n_classes must be at least 1"):
        one_hot([0, 1], n_classes=-3)
    with pytest.raises(ValueError, match="pass n_classes >= 4"):
        one_hot([0, 3], n_classes=2)
    with pytest.raises(ValueError, match="n_classes must be at least 1; got 0"):
        one_hot([], n_classes=0)
    with pytest.raises(ValueError, match="n_classes is required when labels is empty"):
        one_hot([])
    assert one_hot([], n_classes=3).shape == (3, 0)


def test_nested_blocks_checks_values_and_branching():
    with pytest.raises(ValueError, match=r"values\[0\] must be a finite number"):
        nested_blocks(20, 30, (2, 2), values=(np.nan, 1.0))
    with pytest.raises(ValueError, match=r"values\[1\] must be a finite number >= 0"):
        nested_blocks(20, 30, (2, 2), values=(1.0, -1.0))
    with pytest.raises(TypeError, match="branching must be a sequence of integers"):
        nested_blocks(20, 30, 2)


def test_neural_nmf_checks_callback_before_the_hnmf_start(blocks, monkeypatch):
    import nnmf_lib.neural as neural

    def fail(*args, **kwargs):
        raise AssertionError("the hNMF start ran")

    monkeypatch.setattr(neural, "hnmf", fail)
    with pytest.raises(TypeError, match="callback must be a function"):
        neural_nmf(blocks.X, [9, 4], callback=5)


def test_deep_nmf_names_forward_iter(blocks):
    with pytest.raises(ValueError, match="forward_iter must be at least 1"):
        deep_nmf(blocks.X, [9, 4], forward_iter=0)


def test_nnls_return_info_must_be_a_bool():
    with pytest.raises(TypeError, match="return_info must be True or False"):
        nnls(np.eye(2), np.ones((2, 1)), return_info="no")


@pytest.mark.parametrize("bad", [-1.0, np.nan, "1"])
def test_max_time_and_verbose_are_checked(blocks, bad):
    with pytest.raises((TypeError, ValueError), match="max_time must be"):
        nmf(blocks.X, 3, max_time=bad)
    with pytest.raises(TypeError, match="verbose must be True or False"):
        hnmf(blocks.X, [3], verbose="yes")
