"""The browser check of the built site (tools/check_site.py) must catch a broken page.

A two-page book is built with Jupyter Book and the book's own math setup (offline
MathJax): one page is correct, the other has a TeX syntax error, an undefined macro, an
image that does not exist, a link to a missing page and to a missing anchor, a
JavaScript error and a solution that is not collapsible. The check must report each of
these on the broken page, and nothing on the correct one. It needs Debian's chromium
(``make test`` installs it); without it the test fails, it is not skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location(
    "check_site", ROOT / "tools" / "check_site.py"
)
check_site = importlib.util.module_from_spec(spec)
sys.modules["check_site"] = check_site  # dataclasses look their module up there
spec.loader.exec_module(check_site)

CONFIG = """\
title: Mini book
only_build_toc_files: true
execute:
  execute_notebooks: "off"
parse:
  myst_enable_extensions: [dollarmath, amsmath, colon_fence]
sphinx:
  extra_extensions: [sphinx_exercise, sphinx-mathjax-offline]
"""

TOC = """\
format: jb-book
root: good
chapters:
  - file: broken
"""

GOOD = r"""
# A correct page

Inline math $\mathbf A \mathbf S$ and a display:

$$
\min_{\mathbf S \ge 0} \|\mathbf X - \mathbf A \mathbf S\|_F^2
$$

![a figure](figure.png)

A link to {doc}`broken` and to [a section](#a-section).

## A section

```{exercise} Try it
:label: ex-good
Compute $1 + 1$.
```

```{solution} ex-good
:class: dropdown
It is $2$.
```
"""

BROKEN = r"""
# A broken page

An unclosed brace: $\frac{1}{2$. A double exponent: $x^2^3$. An undefined macro:
$\notamacro{x}$.

![a missing figure](missing.png)

<a href="nowhere.html">A missing page</a> and
<a href="good.html#no-such-section">a missing anchor</a>.

<script>callFunctionThatDoesNotExist();</script>

```{exercise} Shown
:label: ex-shown
Compute $2 + 2$.
```

```{solution} ex-shown
It is $4$, and this solution is always open.
```
"""


@pytest.fixture(scope="module")
def mini_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_book")
    (root / "_config.yml").write_text(CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "good.md").write_text(textwrap.dedent(GOOD))
    (root / "broken.md").write_text(textwrap.dedent(BROKEN))
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    fig.savefig(root / "figure.png")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    # Not -W: the broken page's missing image and links are warnings, and the point
    # here is what reaches the browser.
    subprocess.run(
        [str(jupyter_book), "build", str(root)], check=True, capture_output=True
    )
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def checked(mini_book, tmp_path_factory):
    shots = tmp_path_factory.mktemp("screenshots")
    reports, problems = check_site.check_site(mini_book, shots)
    return reports, problems, shots


def test_correct_page_passes(checked):
    reports, problems, _ = checked
    assert not [p for p in problems if p.startswith("good.html")]
    good = reports["good.html"]
    assert good.math >= 4  # inline, display, and the exercise's and solution's math
    assert good.images == 1 and good.solutions == 1


def test_broken_page_fails_on_each_defect(checked):
    _, problems, _ = checked
    broken = "\n".join(p for p in problems if p.startswith("broken.html"))
    assert "math not typeset: '\\\\(\\\\frac{1}{2\\\\)'" in broken  # MathJax skips it
    assert "math error: 'Double exponent" in broken
    assert "undefined TeX macro: '\\\\notamacro{x}'" in broken
    assert "image did not load: missing.png" in broken
    assert "resource /missing.png: HTTP 404" in broken
    assert "dead link nowhere" in broken
    assert "dead anchor good.html#no-such-section" in broken
    assert "JavaScript error" in broken and "callFunctionThatDoesNotExist" in broken
    assert "1 solution(s) not in a collapsible dropdown" in broken


def test_command_line_exit_status_and_screenshots(mini_book, checked, tmp_path):
    _, _, shots = checked
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "broken.png",
        "genindex.png",
        "good.png",
        "search.png",
    ]
    assert check_site.main([str(mini_book), "--screenshots", str(tmp_path)]) == 1


def test_untypeset_math_and_raw_tex_are_caught(tmp_path):
    """A page whose math MathJax never saw (no MathJax at all) fails the check."""
    (tmp_path / "index.html").write_text(
        '<html><body><p>Raw <span class="math">\\(x^2\\)</span> and $y$ here.</p>'
        "</body></html>"
    )
    reports, problems = check_site.check_site(tmp_path)
    assert reports["index.html"].math == 0
    assert any("math not typeset" in p for p in problems)
    assert any("TeX left in the text" in p for p in problems)
