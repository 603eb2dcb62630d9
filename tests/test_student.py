"""Student notebooks and autograding (tools/student.py: `make student`, `make grade`).

On a small chapter built like the book's (a pen-and-paper exercise with a solution, a
code exercise with a gated solution, a hidden glue cell and a check cell, and a hidden
set-up cell that the exercise needs):

- the student notebook (.ipynb and .md) holds no solution, keeps the chapter's cells
  (the hidden set-up too), and has a stub and a self-check cell for the code exercise;
- grading the reference solutions gives full marks, grading the untouched stubs gives
  zero, and a wrong answer gets zero with a ✗ message naming the failed assertion.

On the book's own chapters (without running them): every solution is gone from every
student notebook, and every checked code exercise has its stub and self-check.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from helpers import MYST_HEADER

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("student", ROOT / "tools" / "student.py")
student = importlib.util.module_from_spec(spec)
sys.modules["student"] = student  # dataclasses look their module up there
spec.loader.exec_module(student)

CHAPTER = (
    MYST_HEADER
    + """
# A chapter

```{code-cell} ipython3
import numpy as np
```

```{code-cell} ipython3
:tags: [remove-cell]

data = np.arange(6.0)  # HIDDEN_SETUP: the exercise below uses it
```

## Exercises

```{exercise} ✍ By hand (warm-up)
:label: ex-hand

Show that $1 + 1 = 2$.
```

```{solution} ex-hand
:class: dropdown

PLAIN_SOLUTION_TEXT by counting.
```

````{exercise-start} ⌨ The mean (core)
:label: ex-mean
````

Store the mean of `data` in `center` and the centred data in `centred`.

````{exercise-end}
````

````{solution-start} ex-mean
:class: dropdown
````

GATED_SOLUTION_TEXT: subtract the mean.

```{code-cell} ipython3
center = data.sum() / data.size  # SOLUTION_CODE
centred = data - center
```

```{code-cell} ipython3
:tags: [remove-cell]

assert abs(centred.sum()) < 1e-12  # HIDDEN_SOLUTION_CLAIM
```

```{code-cell} ipython3
:tags: [remove-cell, check]

assert np.isclose(center, 2.5)
assert np.allclose(centred, data - 2.5)
```

````{solution-end}
````

```{code-cell} ipython3
:tags: [remove-cell]

assert centred.max() == 2.5  # HIDDEN_EXERCISE_CLAIM, after the exercises
```
"""
)

SOLUTION_MARKS = [
    "PLAIN_SOLUTION_TEXT",
    "GATED_SOLUTION_TEXT",
    "SOLUTION_CODE",
    "HIDDEN_SOLUTION_CLAIM",
    "HIDDEN_EXERCISE_CLAIM",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "book").mkdir()
    chapter = root / "book" / "chapter.md"
    chapter.write_text(CHAPTER)
    out = root / "student"
    student.student(out, [chapter])
    return out


def test_student_notebook_has_no_solution_and_keeps_the_chapter(built):
    for name in ("chapter.ipynb", "chapter.md"):
        text = (built / name).read_text()
        for mark in SOLUTION_MARKS:
            assert mark not in text, f"{mark} in {name}"
        for kept in ("HIDDEN_SETUP", "Show that $1 + 1 = 2$", "Store the mean of"):
            assert kept in text, f"{kept} missing from {name}"
    markdown = (built / "chapter.md").read_text()
    assert "exercise-start" not in markdown and "````{exercise} ⌨ The mean" in markdown
    assert jupytext.reads(markdown, fmt="md:myst").cells  # reads back as a notebook


def test_code_exercise_gets_a_stub_and_a_self_check(built):
    notebook = nbformat.read(built / "chapter.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    stub = next(s for s in code if s.startswith("# Your answer to ⌨ The mean"))
    assert stub.endswith("\n...") and "Define center, centred" in stub
    check = next(s for s in code if "@self_check" in s)
    assert '@self_check("ex-mean")' in check and "np.isclose(center, 2.5)" in check
    assert code.index(stub) < code.index(check)


def _grades(tmp_path, built, answers):
    """Grade one submission per student; ``answers`` maps a student to the code put
    in place of the stub (None: the stub as handed out)."""
    released = nbformat.read(built / "chapter.ipynb", as_version=4)
    for who, answer in answers.items():
        notebook = nbformat.from_dict(json.loads(json.dumps(released)))
        for cell in notebook.cells:
            if answer is not None and cell.source.startswith("# Your answer"):
                cell.source = answer
        (tmp_path / "submissions" / who).mkdir(parents=True)
        nbformat.write(notebook, tmp_path / "submissions" / who / "chapter.ipynb")
    table = student.grade(tmp_path / "submissions", tmp_path / "grading", built)
    with table.open() as f:
        rows = list(csv.DictReader(f))
    return rows, tmp_path / "grading" / "nbgrader" / "autograded"


def test_grading_gives_full_marks_to_the_reference_and_zero_to_the_stubs(
    built, tmp_path
):
    reference = "center = data.mean()\ncentred = data - center"
    wrong = "center = data.mean()\ncentred = data"
    rows, graded = _grades(
        tmp_path, built, {"ann": reference, "bob": None, "cyd": wrong}
    )
    scores = {(r["student"], r["exercise"]): float(r["score"]) for r in rows}
    assert scores == {("ann", "ex-mean"): 1.0, ("bob", "ex-mean"): 0.0,
                      ("cyd", "ex-mean"): 0.0}  # fmt: skip
    assert {r["max_score"] for r in rows} == {"1.0"}
    assert {r["chapter"] for r in rows} == {"chapter"}

    def self_check_output(who):
        notebook = nbformat.read(graded / who / "chapter" / "chapter.ipynb", 4)
        cell = next(c for c in notebook.cells if "@self_check" in c.source)
        return json.dumps(cell.outputs, ensure_ascii=False)

    assert "✓ ex-mean passes" in self_check_output("ann")
    assert "✗ ex-mean: center is not defined yet" in self_check_output("bob")
    assert (
        "✗ ex-mean does not pass yet: assert np.allclose(centred, data - 2.5)"
        in self_check_output("cyd")
    )
    assert "Traceback" not in self_check_output("cyd")  # a message, not a traceback


def test_the_nbgrader_source_is_the_reference_solution(built):
    source = nbformat.read(
        built / "nbgrader" / "source" / "chapter" / "chapter.ipynb", 4
    )
    answer = next(c.source for c in source.cells if "### BEGIN SOLUTION" in c.source)
    assert "center = data.sum() / data.size  # SOLUTION_CODE" in answer
    assert "HIDDEN_SOLUTION_CLAIM" in answer  # the solution's hidden cells run too


@pytest.fixture(scope="module")
def book_students(tmp_path_factory):
    out = tmp_path_factory.mktemp("students")
    paths = student.chapters()
    student.student(out, paths)
    return out, paths


def test_every_chapter_has_a_student_notebook_without_its_solutions(book_students):
    out, paths = book_students
    for path in paths:
        notebook = nbformat.read(out / f"{path.stem}.ipynb", as_version=4)
        texts = {
            "ipynb": "\n".join(cell.source for cell in notebook.cells),
            "md": (out / f"{path.stem}.md").read_text(),
        }
        for label, lines in student.solution_lines(path).items():
            for line in lines:
                for name, text in texts.items():
                    assert line not in text, f"{path.stem}.{name}, {label}: {line!r}"
        code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
        for solution in student.student_source(path)[1]:
            if solution.gated and solution.checks:
                assert f'@self_check("{solution.label}")' in code, solution.label
        assert "### BEGIN SOLUTION" not in texts["ipynb"]


def test_solutions_are_recognized_in_the_book(book_students):
    """The leak test above is not void: the solutions have lines to look for."""
    _, paths = book_students
    found = {p.stem: student.solution_lines(p) for p in paths}
    assert sum(len(lines) for f in found.values() for lines in f.values()) > 500
    assert len(found["nnls"]) >= 8 and all(found["nnls"].values())
