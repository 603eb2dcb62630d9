"""Helpers shared by the tests."""

from __future__ import annotations

import inspect
import warnings

import numpy as np

import nnmf_lib as nl

# The front matter of a MyST notebook chapter (for the mini books of the tests).
MYST_HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def next_line() -> int:
    """The line number of the line after the caller's (where a test calls the function
    whose warning must point at it)."""
    return inspect.currentframe().f_back.f_lineno + 1


def quiet(function, *args, **kwargs):
    """Run ``function`` with the warnings these tests expect silenced: short runs stop
    at max_iter, and degenerate data can make least-squares systems singular."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nl.ConvergenceWarning)
        warnings.simplefilter("ignore", nl.RankDeficiencyWarning)
        return function(*args, **kwargs)


def read_only(array):
    """A read-only copy: a function that writes to its argument raises."""
    array = np.array(array)
    array.setflags(write=False)
    return array


def factors(result):
    """Every factor matrix (``A``, ``S``, ``B``) of a result, as one flat list."""
    out = []
    for name in ("A", "S", "B"):
        value = getattr(result, name, None)
        if value is not None:
            out += list(value) if isinstance(value, list) else [value]
    return out


def finite_nonnegative(*matrices):
    return all(np.isfinite(m).all() and (m >= 0).all() for m in matrices)
