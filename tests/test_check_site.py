"""The browser check of the built site (tools/check_site.py) must catch a broken page.

A two-page book is built with Jupyter Book and the book's own math setup (offline
MathJax): one page is correct, the other has a TeX syntax error, an undefined macro, an
image that does not exist, a link to a missing page and to a missing anchor, a
JavaScript error, a solution that is not collapsible, a box too wide for a phone and a
menu button that does nothing. The check must report each of these on the broken page,
and nothing on the correct one (whose long formula and long code line scroll inside
their own boxes at 390 px, and whose menu and contents open). It needs Debian's chromium
(``make test`` installs it); without it the test fails, it is not skipped, unless the
environment variable NO_BROWSER is set (README: testing without a browser).
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

pytestmark = pytest.mark.skipif(
    check_site.browser_skipped(), reason="NO_BROWSER is set: no browser check"
)

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
+ \sum_{i=1}^{n} a_i b_i c_i d_i e_i f_i g_i h_i i_i j_i k_i l_i m_i n_i o_i p_i q_i
$$

```python
a_long_line_of_code = "that goes on and on, well past the width of a phone's screen"
```

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

<div style="width: 600px">A box 600 px wide, too wide for a phone.</div>

<script>
// A dead menu button: every click on it is swallowed before it reaches the button.
document.addEventListener("click", event => {
  if (event.target.closest(".primary-toggle")) event.stopImmediatePropagation();
}, true);
</script>

## A section of the broken page

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
    assert "at 390 px the page scrolls sideways by" in broken
    assert "px too wide): A box 600 px wide, too wide for a phone" in broken
    assert "the menu button (.primary-toggle) does not open the menu" in broken
    assert "contents button" not in broken  # the contents button still works


def test_the_correct_page_has_contents_to_open_on_a_phone(mini_book):
    """The correct page passes with its contents button clicked, not skipped."""
    html = (mini_book / "good.html").read_text()
    assert "secondary-toggle" in html and 'href="#a-section"' in html


def test_command_line_exit_status_and_screenshots(mini_book, checked, tmp_path):
    _, _, shots = checked
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "broken.png",
        "broken@390.png",
        "genindex.png",
        "genindex@390.png",
        "good.png",
        "good@390.png",
        "search.png",
        "search@390.png",
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
