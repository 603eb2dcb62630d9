"""The book's Sphinx extension (tools/book_extension.py), on a two-exercise mini book.

- ``make course`` (``NNMF_BOOK_HIDE_SOLUTIONS=1``) removes every solution, including a
  gated solution's code cell, and keeps the exercises; its downloads and Colab target
  are the student notebooks, it has no Binder button, and the site check of it finds
  no solution anywhere (the same check finds them in the normal build);
- the normal build shows both solutions, collapsed;
- the downloadable notebook gets the Colab setup cell, and the Colab button points at
  that notebook on the deployed site; the setup cell works on (a stand-in for) Colab in
  one run, when run again and after a restart;
- no JupyterHub button unless a hub is configured.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from helpers import MYST_HEADER

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "check_site", ROOT / "tools" / "check_site.py"
)
check_site = importlib.util.module_from_spec(spec)
sys.modules["check_site"] = check_site  # dataclasses look their module up there
spec.loader.exec_module(check_site)
DATA = ROOT / "book" / "data" / "table1_gao2019.csv"

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
  binderhub_url: https://mybinder.org
parse:
  myst_enable_extensions: [dollarmath, colon_fence]
sphinx:
  extra_extensions: [sphinx_exercise, sphinx-mathjax-offline]
  local_extensions:
    book_extension: {ROOT / "tools"}
"""

TOC = "format: jb-book\nroot: book/chapter\n"

CHAPTER = (
    MYST_HEADER
    + """
# A chapter

```{code-cell} ipython3
import nnmf_lib

print("chapter code ran")
```

```{code-cell} ipython3
with open("data/table1_gao2019.csv") as f:  # relative to the chapter's folder
    print(f.readline())
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
answer = 42
print("GATED_SOLUTION_OUTPUT")
```

```{code-cell} ipython3
:tags: [remove-cell, check]

assert answer == 42
```

````{solution-end}
````

Text after the exercises.
"""
)


def build(root: Path, hide: bool) -> Path:
    (root / "_config.yml").write_text(CONFIG)
    (root / "_toc.yml").write_text(TOC)
    (root / "book" / "data").mkdir(parents=True)
    (root / "book" / "chapter.md").write_text(CHAPTER)
    shutil.copy(DATA, root / "book" / "data")
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
    html = (normal / "book" / "chapter.html").read_text()
    for text in ("PLAIN_SOLUTION_TEXT", "GATED_SOLUTION_TEXT", "GATED_SOLUTION_OUTPUT"):
        assert text in html
    assert html.count('class="solution dropdown') == 2


def test_course_build_removes_every_solution_and_keeps_the_rest(course):
    html = (course / "book" / "chapter.html").read_text()
    for text in ("PLAIN_SOLUTION_TEXT", "GATED_SOLUTION_TEXT", "GATED_SOLUTION_OUTPUT"):
        assert text not in html
    assert 'class="solution' not in html
    for text in ("A proof", "Write a function.", "chapter code ran", "Text after"):
        assert text in html


def test_colab_cell_and_button(normal):
    notebook = json.loads((normal / "_sources" / "book" / "chapter.ipynb").read_text())
    nbformat.validate(nbformat.from_dict(notebook))  # cell ids (nbformat 4.5)
    first = notebook["cells"][0]
    assert first["metadata"]["colab_setup"] and first["id"] == "colab-setup"
    source = "".join(first["source"])
    assert '"https://github.com/example-org/example-book"' in source
    assert "chapter code ran" in json.dumps(notebook["cells"][1:])  # executed copy
    html = (normal / "book" / "chapter.html").read_text()
    assert (
        "https://colab.research.google.com/github/example-org/example-book/blob/"
        "gh-pages/_sources/book/chapter.ipynb"
    ) in html


def test_no_jupyterhub_button_without_a_hub(normal):
    html = (normal / "book" / "chapter.html").read_text()
    assert "JupyterHub" not in html
    assert "Colab" in html and "Binder" in html


def test_course_downloads_and_colab_target_are_the_student_notebooks(course):
    sources = course / "_sources" / "book"
    notebook = json.loads((sources / "chapter.ipynb").read_text())
    nbformat.validate(nbformat.from_dict(notebook))
    cells = ["".join(cell["source"]) for cell in notebook["cells"]]
    assert cells[0].startswith("# On Colab only")  # the Colab setup cell
    assert any(c.startswith("# Your answer to Some code") for c in cells)
    assert any('@self_check("ex-code")' in c for c in cells)
    for name in ("chapter.ipynb", "chapter.md"):
        text = (sources / name).read_text()
        for secret in ("PLAIN_SOLUTION_TEXT", "GATED_SOLUTION", "answer = 42"):
            assert secret not in text, f"{secret} in {name}"
    html = (course / "book" / "chapter.html").read_text()
    assert "Colab" in html and "_sources/book/chapter.ipynb" in html
    assert "Binder" not in html  # it would open the chapter with its solutions


@pytest.mark.skipif(
    check_site.browser_skipped(), reason="NO_BROWSER is set: no browser check"
)
def test_site_check_finds_solutions_in_the_normal_build_only(normal, course):
    chapters = normal.parents[1] / "book"
    _, problems = check_site.check_site(normal, solutions=False, chapters=chapters)
    leaks = "\n".join(problems)
    assert "solution(s) shown in a build without solutions" in leaks
    assert "chapter.html: solution of ex-proof shown: 'PLAIN_SOLUTION_TEXT" in leaks
    assert "chapter.html: solution of ex-code shown: 'GATED_SOLUTION_TEXT" in leaks
    assert "_sources/book/chapter.ipynb: solution of ex-code" in leaks
    assert "_sources/book/chapter.md: solution of ex-code" in leaks
    chapters = course.parents[1] / "book"
    _, problems = check_site.check_site(course, solutions=False, chapters=chapters)
    assert problems == []


def test_the_book_configures_no_placeholder_hub():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    hub = config["launch_buttons"].get("jupyterhub_url")
    assert not hub or "example" not in hub, f"placeholder JupyterHub URL {hub}"


# Run in a fresh Python process: a stand-in google.colab module, and stand-ins for
# git (a copy of this repository's library and data, no network) and pip (nothing to
# install: the point is that nnmf_lib imports without it, as on Colab, where an
# editable install takes effect only after a restart). The venv's own editable
# nnmf_lib is hidden, so that only the setup cell can make it importable.
DRIVER = """\
import json, os, shutil, subprocess, sys, types

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
try:
    import nnmf_lib
    raise SystemExit("nnmf_lib importable before the setup cell: the test is void")
except ModuleNotFoundError:
    pass
sys.modules["google"] = types.ModuleType("google")
sys.modules["google.colab"] = types.ModuleType("google.colab")
calls = []

def run(command, check=False, **kwargs):
    calls.append(command[:2] if command[0] == "git" else command[1:4])
    if command[:2] == ["git", "clone"]:
        assert command[-2] == REPOSITORY, command
        for part in ("nnmf_lib", "book/data"):
            shutil.copytree(os.path.join(ROOT, part), os.path.join(command[-1], part))
    return subprocess.CompletedProcess(command, 0)

subprocess.run = run
cells = json.load(open(NOTEBOOK))["cells"]
setup = "".join(cells[0]["source"]).replace('"/content/', '"' + CONTENT + "/")
first = ["".join(c["source"]) for c in cells[1:] if c["cell_type"] == "code"][:2]
namespace = {}
for attempt in range(RUNS):
    exec(setup, namespace)
    for code in first:
        exec(code, namespace)
import nnmf_lib
print(json.dumps({"calls": calls, "cwd": os.getcwd(), "nnmf_lib": nnmf_lib.__file__}))
"""


def test_colab_setup_cell_works_in_one_run_again_and_after_a_restart(normal, tmp_path):
    notebook = normal / "_sources" / "book" / "chapter.ipynb"
    content = tmp_path / "content"  # Colab's /content
    content.mkdir()
    results = []
    for runs in (2, 1):  # the first session runs the cell twice; then a restart
        driver = (
            f"ROOT = {str(ROOT)!r}\nNOTEBOOK = {str(notebook)!r}\n"
            f"CONTENT = {str(content)!r}\nRUNS = {runs}\n"
            f"REPOSITORY = 'https://github.com/example-org/example-book'\n" + DRIVER
        )
        done = subprocess.run(
            [sys.executable, "-c", driver], capture_output=True, text=True, cwd=content
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "chapter code ran" in done.stdout and "Table 1" in done.stdout
        results.append(json.loads(done.stdout.splitlines()[-1]))
    clone = content / "example-book"
    first, restart = results
    # One clone and one install in the first session, however often the cell runs.
    assert first["calls"] == [["git", "clone"], ["-m", "pip", "install"]]
    assert restart["calls"] == []  # after a restart: nothing to fetch or install
    for result in results:
        assert result["cwd"] == str(clone / "book")
        assert result["nnmf_lib"] == str(clone / "nnmf_lib" / "__init__.py")


BIB = """\
@article{lee1999learning,
  author = {Lee, Daniel D. and Seung, H. Sebastian},
  title = {Learning the parts of objects by non-negative matrix factorization},
  journal = {Nature}, volume = {401}, pages = {788--791}, year = {1999}
}
@inproceedings{gao2019neural,
  author = {Gao, Tyler and Haddock, Jamie and Molitor, Denali and Needell, Deanna},
  title = {Neural nonnegative matrix factorization},
  booktitle = {IEEE CAMSAP}, year = {2019}
}
"""


@pytest.fixture(scope="module")
def cited(tmp_path_factory):
    """Two pages that cite, and a references page."""
    root = tmp_path_factory.mktemp("cited")
    config = CONFIG + (  # CONFIG ends inside its sphinx: block
        "  config:\n    bibtex_reference_style: author_year\n"
        "    bibtex_default_style: authoryear\n"
        "bibtex_bibfiles: [references.bib]\n"
    )
    (root / "_config.yml").write_text(config)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: a\nchapters:\n  - file: b\n  - file: references\n"
    )
    (root / "references.bib").write_text(BIB)
    (root / "a.md").write_text(
        "# Page A\n\nParts {cite:p}`lee1999learning`; layers {cite:p}`gao2019neural`.\n"
    )
    (root / "b.md").write_text("# Page B\n\nAs {cite:t}`gao2019neural` show.\n")
    (root / "references.md").write_text("# References\n\n```{bibliography}\n```\n")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run(
        [str(jupyter_book), "build", str(root), "-W", "-n"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "_build" / "html"


def test_references_are_labelled_as_the_text_cites_them(cited):
    page_a = (cited / "a.html").read_text()
    assert "Lee and Seung, 1999" in page_a and "Gao <em>et al.</em>, 2019" in page_a
    references = (cited / "references.html").read_text()
    assert "Lee and Seung, 1999<span" in references  # [Lee and Seung, 1999]
    assert "Gao et al., 2019<span" in references
    assert references.index("Gao et al., 2019<") < references.index("Lee and Seung")
    assert "LS99" not in references and "GHMN19" not in references


def test_references_link_back_to_every_page_that_cites_them(cited):
    references = (cited / "references.html").read_text()
    links = re.findall(
        r'<a class="reference external" href="([ab]\.html#[^"]+)"', references
    )
    assert sorted(link.split("#")[0] for link in links) == [
        "a.html",
        "a.html",
        "b.html",
    ]
    for link in links:
        page, anchor = link.split("#")
        assert f'id="{anchor}"' in (cited / page).read_text(), link
    assert references.count("Cited in") == 2
