"""The book's Sphinx extension (tools/book_extension.py), on a two-exercise mini book.

- ``make course`` (``NNMF_BOOK_HIDE_SOLUTIONS=1``) removes every solution, including a
  gated solution's code cell, and keeps the exercises;
- the normal build shows both solutions, collapsed;
- the downloadable notebook gets the Colab setup cell, and the Colab button points at
  that notebook on the deployed site.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFIG = f"""\
title: Mini course
only_build_toc_files: true
execute:
  execute_notebooks: force
repository:
  url: https://github.com/example-org/example-book
  branch: main
launch_buttons:
  colab_url: https://colab.research.google.com
parse:
  myst_enable_extensions: [dollarmath, colon_fence]
sphinx:
  extra_extensions: [sphinx_exercise, sphinx-mathjax-offline]
  local_extensions:
    book_extension: {ROOT / "tools"}
"""

TOC = "format: jb-book\nroot: chapter\n"

CHAPTER = """\
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

# A chapter

```{code-cell} ipython3
print("chapter code ran")
```

```{exercise} A proof
:label: ex-proof
Show that $1 + 1 = 2$.
```

```{solution} ex-proof
:class: dropdown
PLAIN_SOLUTION_TEXT by counting.
```

````{exercise-start} Some code
:label: ex-code
````

Write a function.

````{exercise-end}
````

````{solution-start} ex-code
:class: dropdown
````

GATED_SOLUTION_TEXT before the code.

```{code-cell} ipython3
print("GATED_SOLUTION_OUTPUT")
```

````{solution-end}
````

Text after the exercises.
"""


def build(root: Path, hide: bool) -> Path:
    (root / "_config.yml").write_text(CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "chapter.md").write_text(CHAPTER)
    env = {**os.environ, "NNMF_BOOK_HIDE_SOLUTIONS": "1" if hide else "0"}
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run(
        [str(jupyter_book), "build", str(root), "-W", "-n"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def normal(tmp_path_factory):
    return build(tmp_path_factory.mktemp("normal"), hide=False)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return build(tmp_path_factory.mktemp("course"), hide=True)


def test_normal_build_shows_both_solutions_collapsed(normal):
    html = (normal / "chapter.html").read_text()
    for text in ("PLAIN_SOLUTION_TEXT", "GATED_SOLUTION_TEXT", "GATED_SOLUTION_OUTPUT"):
        assert text in html
    assert html.count('class="solution dropdown') == 2


def test_course_build_removes_every_solution_and_keeps_the_rest(course):
    html = (course / "chapter.html").read_text()
    for text in ("PLAIN_SOLUTION_TEXT", "GATED_SOLUTION_TEXT", "GATED_SOLUTION_OUTPUT"):
        assert text not in html
    assert 'class="solution' not in html
    for text in ("A proof", "Write a function.", "chapter code ran", "Text after"):
        assert text in html


def test_colab_cell_and_button(normal):
    notebook = json.loads((normal / "_sources" / "chapter.ipynb").read_text())
    first = notebook["cells"][0]
    assert first["metadata"]["colab_setup"]
    source = "".join(first["source"])
    assert "https://github.com/example-org/example-book" in source
    compile(source, "colab cell", "exec")  # valid Python
    assert "chapter code ran" in json.dumps(notebook["cells"][1:])  # executed copy
    html = (normal / "chapter.html").read_text()
    assert (
        "https://colab.research.google.com/github/example-org/example-book/blob/"
        "gh-pages/_sources/chapter.ipynb"
    ) in html
