"""Numbers in the book's prose are computed and glued, never typed by hand.

A chapter's text may only contain a decimal number (0.053, 1.5e-3, 44.4%) as a glue
reference (``{glue:text}`name:.3f```), inside math or code, or when the chapter declares
it as quoted from a source, in a MyST comment next to the quote:
``% quoted-numbers: 0.053 0.399 0.860 (Table 1 of the paper)``.
"""

from __future__ import annotations

import jupytext
import pytest
from chapters import notebooks, quoted_numbers, read, typed_decimals


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_no_hand_typed_decimal_numbers_in_the_prose(path):
    found = typed_decimals(read(path))
    assert not found, f"{path.name}: decimal numbers typed in the prose " + "; ".join(
        f"{number!r} in cell {cell}: {line!r}" for cell, number, line in found
    )


CHAPTER = """\
---
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

The error is {glue:text}`err:.3f`, $\\epsilon = 10^{-3}$ and `tol=1e-6` are fine,
and so are step 2.4 of {prf:ref}`alg-x` and steps 3.1-3.2.

% quoted-numbers: 0.053 0.399 (Table 1 of the paper)
The paper reports 0.053 and 0.399.
"""


def test_glued_math_code_and_quoted_numbers_pass():
    nb = jupytext.reads(CHAPTER, fmt="md:myst")
    assert typed_decimals(nb) == []
    assert quoted_numbers(nb) == {"0.053", "0.399"}


@pytest.mark.parametrize("typed", ["0.123", "1.5e-3", "2e-16", "44.4%", ".5"])
@pytest.mark.parametrize("after", [" here.", ".", ",", ")"])
def test_a_hand_typed_number_fails(typed, after):
    nb = jupytext.reads(CHAPTER + f"\nWe measured ({typed}{after}\n", fmt="md:myst")
    assert [number for _, number, _ in typed_decimals(nb)] == [typed.rstrip("%")]
