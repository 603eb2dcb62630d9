"""Student notebooks without solutions, and autograding with nbgrader.

``make student`` (``python tools/student.py student``) writes, for every chapter of
``book/``, a student version into ``_build/student/``: ``<chapter>.ipynb`` and the same
notebook as MyST Markdown, ``<chapter>.md``, next to a copy of ``book/data/``. In it

- every solution is gone: the text and math of ``{solution}`` blocks, and everything
  between ``{solution-start}`` and ``{solution-end}`` (text, code, hidden cells);
- every code exercise whose solution has a check cell (tags ``remove-cell`` and
  ``check``) gets a stub cell (a comment naming what to define, and ``...``) and a
  self-check cell, built from the check cell, that prints ✓ when the answer passes and
  ✗ with the reason when it does not, offline, with nothing but the chapter's imports;
- the chapter's own cells, hidden ones included (set-up, glue, claims), stay, except
  hidden cells after the first exercise: they check the exercises' solutions.

The student notebook is made by nbgrader (``generate_assignment``) from an nbgrader
*source* notebook, which is the student notebook with the reference solution in each
stub (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) and each self-check
cell marked as an autograded test worth one point. ``make grade SUBMISSIONS=<folder>``
(``python tools/student.py grade <folder>``) runs nbgrader's ``autograde`` on every
``<folder>/<student>/<chapter>.ipynb``, locally (no Docker, no network), and writes
``_build/grading/grades.csv``: one row per student and exercise, with its score.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import csv
import os
import re
import shutil
import sys
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
STUDENT = ROOT / "_build" / "student"
GRADING = ROOT / "_build" / "grading"

# A directive fence that opens a block: ```{name} argument, or :::{name} argument.
_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
_LABEL = re.compile(r"^:label:\s*([\w-]+)\s*$", re.M)

HELPER_ID = "self-check-helper"
HELPER = """\
# Self-checks of the exercises below: after your answer, run the cell under it. It
# prints ✓ when your answer passes, and ✗ with the reason when it does not yet.
import traceback


class SelfCheckFailed(Exception):
    def _render_traceback_(self):  # shown by Jupyter instead of a traceback
        return [f"\\N{BALLOT X} {self}"]


def self_check(label):
    def run(check):
        try:
            check()
        except NameError as error:
            message = f"{error.name} is not defined yet: define it in your answer"
            raise SelfCheckFailed(f"{label}: {message}") from None
        except AssertionError as error:
            frames = traceback.extract_tb(error.__traceback__)
            line = [f.line for f in frames if f.filename == check.__code__.co_filename]
            failed = line[-1] if line else str(error)
            raise SelfCheckFailed(f"{label} does not pass yet: {failed}") from None
        except Exception as error:
            failed = f"{type(error).__name__}: {error}"
            raise SelfCheckFailed(f"{label}: the check stopped with {failed}") from None
        print(f"\\N{CHECK MARK} {label} passes")

    return run
"""


@dataclass
class Solution:
    """One exercise's solution as the chapter has it."""

    label: str
    gated: bool
    text: list[str] = field(default_factory=list)  # markdown inside the solution
    code: list[str] = field(default_factory=list)  # code cells (not checks)
    checks: list[str] = field(default_factory=list)  # check cells


@dataclass
class Exercise:
    label: str
    title: str
    statement: str = ""


def _directive_end(lines: list[str], start: int, fence: str) -> int:
    """Index of the line that closes the directive opened at ``lines[start]``."""
    close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for index in range(start + 1, len(lines)):
        if close.match(lines[index]):
            return index
    raise ValueError(f"unclosed directive: {lines[start]!r}")


def blocks(text: str):
    """Split markdown into top-level pieces: ("text", lines) and ("directive", name,
    argument, fence, lines) for each directive block, fences included."""
    lines = text.split("\n")
    index, plain = 0, []
    while index < len(lines):
        match = _OPEN.match(lines[index])
        if match is None:
            plain.append(lines[index])
            index += 1
            continue
        if plain:
            yield ("text", plain)
            plain = []
        end = _directive_end(lines, index, match["fence"])
        yield ("directive", match["name"], match["arg"].strip(), match["fence"],
               lines[index : end + 1])  # fmt: skip
        index = end + 1
    if plain:
        yield ("text", plain)


def _label(lines: list[str]) -> str:
    match = _LABEL.search("\n".join(lines))
    return match.group(1) if match else ""


def _markdown(lines: list[str]) -> dict | None:
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines).strip("\n"))
    return nbformat.v4.new_markdown_cell(text) if text.strip() else None


# --- names an answer must define -----------------------------------------------------


def _stored(tree: ast.AST) -> set[str]:
    """Names bound at the top level of ``tree`` (not inside functions or classes)."""
    names: set[str] = set()

    def visit(node, top):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if top:
                names.add(node.name)
            return
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp):
            return
        if isinstance(node, ast.GeneratorExp):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, top)

    visit(tree, True)
    return names


def _read(tree: ast.AST) -> list[str]:
    """Names read in ``tree``, in order of first appearance."""
    seen = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id not in seen:
                seen.append(node.id)
    return seen


def names_to_define(solution: Solution, statement: str) -> tuple[list[str], list[str]]:
    """The names the check reads that the reference solution defines: first those the
    statement names (in its order), then the others the check also needs."""
    defined = set().union(*(_stored(ast.parse(code)) for code in solution.code))
    needed = []
    for check in solution.checks:
        tree = ast.parse(check)
        local = _stored(tree)
        for name in _read(tree):
            if name in defined and name not in local and name not in needed:
                needed.append(name)
    needed = [n for n in needed if not hasattr(builtins, n)]
    positions = {
        n: m.start() for n in needed if (m := re.search(rf"`[^`]*\b{n}\b", statement))
    }
    named = sorted(positions, key=positions.get)
    return named, sorted(n for n in needed if n not in positions)


# --- the student and nbgrader source notebooks ---------------------------------------


def _nbgrader(grade_id: str, *, grade=False, solution=False, locked=False, points=0):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution}  # fmt: skip
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def answer_cell(exercise: Exercise, solution: Solution) -> dict:
    """The stub, with the reference solution between nbgrader's markers."""
    named, others = names_to_define(solution, exercise.statement)
    comment = f"Your answer to {exercise.title or exercise.label}"
    if named or others:
        comment += ". Define " + ", ".join(named or others)
        if named and others:
            comment += f" (the self-check also reads {', '.join(others)})"
    comment = textwrap.fill(
        comment, width=86, initial_indent="# ", subsequent_indent="# "
    )
    reference = "\n\n".join(code.strip("\n") for code in solution.code)
    source = f"{comment}\n### BEGIN SOLUTION\n{reference}\n### END SOLUTION"
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(_nbgrader(f"{solution.label}-answer", solution=True))
    return cell


def check_cell(solution: Solution) -> dict:
    body = "\n\n".join(check.strip("\n") for check in solution.checks)
    source = (
        f"# Self-check of {solution.label}: run it after your answer.\n"
        f'@self_check("{solution.label}")\n'
        f"def _():\n"
        + "\n".join(f"    {line}" if line else "" for line in body.split("\n"))
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(_nbgrader(solution.label, grade=True, locked=True, points=1))
    return cell


def _plain_exercise(exercise_lines: list[str], statement: list[str]) -> list[str]:
    """A gated exercise (exercise-start, statement, exercise-end) as one directive,
    which JupyterLab (jupyterlab-myst) renders as one box."""
    inner = max(
        [len(m) for m in re.findall(r"^(`{3,})", "\n".join(statement), re.M)] + [2]
    )
    fence = "`" * max(4, inner + 1)
    head = exercise_lines[0].split("{exercise-start}", 1)[1]
    options = [line for line in exercise_lines[1:-1] if line.startswith(":")]
    body = "\n".join(statement).strip("\n").split("\n")
    return [f"{fence}{{exercise}}{head}", *options, "", *body, fence]


def _flush(text: list[str], cells: list) -> None:
    """Append the markdown gathered so far as a cell, and start afresh."""
    new = _markdown(text)
    if new is not None:
        cells.append(new)
    text.clear()


def student_source(path: Path) -> tuple[nbformat.NotebookNode, list[Solution]]:
    """The nbgrader source notebook of a chapter, and the chapter's solutions."""
    chapter = jupytext.read(path)
    cells, solutions = [], []
    gated: Solution | None = None
    exercise: Exercise | None = None
    exercises: dict[str, Exercise] = {}
    in_exercises = False
    pending_statement: tuple[list[str], list[str]] | None = None
    for cell in chapter.cells:
        if cell.cell_type != "markdown":
            tags = cell.metadata.get("tags", [])
            if gated is not None:
                (gated.checks if "check" in tags else gated.code).append(cell.source)
            elif in_exercises and "remove-cell" in tags:
                continue  # a hidden check of an exercise's solution
            else:
                kept = copy.deepcopy(cell)
                if "remove-cell" in tags:  # folded in JupyterLab, as in the book
                    kept.metadata.setdefault("jupyter", {})["source_hidden"] = True
                cells.append(kept)
            continue
        text: list[str] = []

        for piece in blocks(cell.source):
            if piece[0] == "text":
                if gated is not None:
                    gated.text += piece[1]
                elif pending_statement is not None:
                    pending_statement[1].extend(piece[1])
                else:
                    text += piece[1]
                continue
            _, name, arg, _, lines = piece
            if gated is not None and name != "solution-end":
                gated.text += lines
                continue
            if name in ("exercise", "exercise-start") and not in_exercises:
                in_exercises = True
                _flush(text, cells)
                helper = nbformat.v4.new_code_cell(HELPER)
                helper.metadata.update(_nbgrader(HELPER_ID, locked=True))
                cells.append(helper)
            if name == "exercise":
                exercise = Exercise(_label(lines), arg, "\n".join(lines))
                exercises[exercise.label] = exercise
                text += lines
            elif name == "exercise-start":
                exercise = Exercise(_label(lines), arg)
                exercises[exercise.label] = exercise
                pending_statement = (lines, [])
            elif name == "exercise-end":
                head, statement = pending_statement or ([], [])
                exercise.statement = "\n".join(statement)
                text += _plain_exercise(head, statement) if head else lines
                pending_statement = None
            elif name == "solution":
                solutions.append(Solution(arg, gated=False, text=lines))
            elif name == "solution-start":
                gated = Solution(arg, gated=True)
            elif name == "solution-end":
                solutions.append(gated)
                _flush(text, cells)
                target = exercises.get(gated.label, Exercise(gated.label, ""))
                if gated.code:
                    cells.append(answer_cell(target, gated))
                if gated.checks:
                    cells.append(check_cell(gated))
                gated = None
            elif pending_statement is not None:
                pending_statement[1].extend(lines)
            else:
                text += lines
        _flush(text, cells)
    if gated is not None or pending_statement is not None:
        raise ValueError(f"{path.name}: a gated exercise or solution is not closed")
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=chapter.metadata)
    notebook.metadata.pop("jupytext", None)
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"{path.stem}-{index}"
    return notebook, solutions


_INCLUDE = re.compile(r"\{literalinclude\}\s+(\S+)")


def _included(path: Path) -> str:
    """The files a chapter shows with literalinclude (library code): their lines are
    on the page, whether or not a solution also has them."""
    texts = []
    for ref in _INCLUDE.findall(path.read_text(encoding="utf-8")):
        # "/x" is relative to the book's root (the folder above book/), "x" to book/
        source = (
            path.parent.parent / ref[1:] if ref.startswith("/") else path.parent / ref
        )
        if source.is_file():
            texts.append(source.read_text(encoding="utf-8"))
    return "\n".join(texts)


def _outside(notebook) -> str:
    """The text of a source notebook without the reference solutions in it."""
    parts = []
    for cell in notebook.cells:
        parts.append(re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", cell.source,
                            flags=re.S))  # fmt: skip
    return "\n".join(parts)


def solution_lines(path: Path, minimum: int = 25) -> dict[str, list[str]]:
    """For each solution of a chapter, its lines (text and code, not its checks) at
    least ``minimum`` characters long that appear nowhere else in the chapter: finding
    one in a student's copy of the chapter means that the solution leaked."""
    notebook, solutions = student_source(path)
    outside = _outside(notebook) + "\n" + _included(path)
    found = {}
    for solution in solutions:
        lines = "\n".join(solution.text + solution.code).split("\n")
        found[solution.label] = list(
            dict.fromkeys(
                line
                for line in (line.strip() for line in lines)
                if len(line) >= minimum and line not in outside
            )
        )
    return found


# Markup removed from a solution's text before looking for its words on a page.
_MARKUP = [
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"(?<!\\)\$[^$]+?(?<!\\)\$"),  # inline math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {ref}`...`, {cite:t}`...`
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"^\s*(`{3,}|:{3,}).*$|^\s*:[\w-]+:.*$", re.M),  # fences, options
    re.compile(r"[*_]{1,2}(?=\w)|(?<=\w)[*_]{1,2}"),  # emphasis marks
]
_WORD = re.compile(r"[\w'’-]+,?")


def normalized(text: str) -> str:
    """Lower case, one space between words, straight quotes (Sphinx curls them): how
    page text and source text are compared."""
    text = text.translate(str.maketrans("‘’“”", "''\"\""))
    return " ".join(text.lower().split())


def prose_runs(text: str) -> list[str]:
    """The runs of plain words in markdown, split where markup was removed."""
    for pattern in _MARKUP:
        text = pattern.sub("\n\n", text)
    runs = re.split(r"[\n]{2,}|[.;:()\[\]]", text)
    return [normalized(run) for run in runs if run.strip()]


def solution_phrases(path: Path, size: int = 6) -> dict[str, list[str]]:
    """For each solution, its runs of ``size`` words of plain prose that appear nowhere
    else in the chapter: found on a page, they mean the solution's text is there."""
    notebook, solutions = student_source(path)
    outside = " ".join(prose_runs(_outside(notebook)))
    found = {}
    for solution in solutions:
        phrases = []
        for run in prose_runs("\n".join(solution.text)):
            words = run.split()
            for start in range(len(words) - size + 1):
                phrase = " ".join(words[start : start + size])
                plain = all(_WORD.fullmatch(w) for w in words[start : start + size])
                if plain and phrase not in outside:
                    phrases.append(phrase)
        found[solution.label] = list(dict.fromkeys(phrases))
    return found


def chapters(book: Path = BOOK) -> list[Path]:
    """Every chapter that runs as a notebook: a .md in book/ that names a kernel."""
    out = []
    for path in sorted(Path(book).glob("*.md")):
        head = path.read_text(encoding="utf-8")[:2000]
        if head.startswith("---") and "kernelspec:" in head:
            out.append(path)
    return out


def _config(course: Path):
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course.resolve())
    config.Exchange.root = str(course.resolve() / "exchange")  # unused; keeps it local
    config.ClearSolutions.code_stub = {"python": "..."}
    config.Execute.timeout = 900  # per cell, as the book build allows
    return config


def _nbgrader_api(course: Path):
    from nbgrader.apps import NbGraderAPI

    # nbgrader runs `alembic` (for its gradebook) from PATH: the one next to Python.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ["PATH"]

    return NbGraderAPI(config=_config(course))


def make_course(course: Path, paths: list[Path]) -> None:
    """An nbgrader course folder: source notebooks, and their released versions."""
    shutil.rmtree(course, ignore_errors=True)
    api = _nbgrader_api(course)
    for path in paths:
        source, _ = student_source(path)
        folder = course / "source" / path.stem
        folder.mkdir(parents=True)
        nbformat.write(source, folder / f"{path.stem}.ipynb")
        if (path.parent / "data").is_dir():
            shutil.copytree(path.parent / "data", folder / "data")
        result = api.generate_assignment(path.stem)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {path.stem}:\n{result}")


def student(out: Path = STUDENT, paths: list[Path] | None = None) -> list[Path]:
    """Write the student notebooks (.ipynb and .md) of every chapter into ``out``."""
    paths = chapters() if paths is None else paths
    course = out / "nbgrader"
    make_course(course, paths)
    written = []
    for path in paths:
        released = course / "release" / path.stem / f"{path.stem}.ipynb"
        notebook = nbformat.read(released, as_version=4)
        target = out / f"{path.stem}.ipynb"
        shutil.copy(released, target)
        for cell in notebook.cells:
            cell.metadata.pop("nbgrader", None)
        jupytext.write(notebook, out / f"{path.stem}.md", fmt="md:myst")
        written.append(target)
    if (BOOK / "data").is_dir():
        shutil.rmtree(out / "data", ignore_errors=True)
        shutil.copytree(BOOK / "data", out / "data")
    return written


# --- grading -------------------------------------------------------------------------


def _grade_ids(path: Path) -> list[str]:
    """The autograded cells' ids (the exercises' labels), in the notebook's order."""
    cells = nbformat.read(path, as_version=4).cells
    meta = [cell.metadata.get("nbgrader", {}) for cell in cells]
    return [m["grade_id"] for m in meta if m.get("grade")]


def grade(submissions: Path, out: Path = GRADING, student_dir: Path = STUDENT) -> Path:
    """Autograde ``submissions/<student>/<chapter>.ipynb``; write ``out/grades.csv``."""
    from nbgrader.api import Gradebook

    source = student_dir / "nbgrader"
    if not (source / "gradebook.db").exists():
        raise SystemExit(f"grade: {source} is missing; run `make student` first")
    course = out / "nbgrader"
    shutil.rmtree(course, ignore_errors=True)
    course.mkdir(parents=True)
    for part in ("source", "release"):
        shutil.copytree(source / part, course / part)
    shutil.copy(source / "gradebook.db", course / "gradebook.db")
    assignments = {p.name for p in (course / "source").iterdir()}
    api = _nbgrader_api(course)
    # nbgrader's own use of SQLAlchemy sessions warns at every submission.
    warnings.filterwarnings("ignore", module="nbgrader.*")
    graded = []
    for notebook in sorted(Path(submissions).glob("*/*.ipynb")):
        who, chapter = notebook.parent.name, notebook.stem
        if chapter not in assignments:
            print(f"grade: skipped {notebook} (no chapter {chapter!r})")
            continue
        target = course / "submitted" / who / chapter
        target.mkdir(parents=True)
        shutil.copy(notebook, target / f"{chapter}.ipynb")
        print(f"grading {who}: {chapter}", flush=True)
        result = api.autograde(chapter, who)
        if not result["success"]:
            raise RuntimeError(f"nbgrader autograde {chapter} {who}:\n{result['log']}")
        graded.append((who, chapter))
    out.mkdir(parents=True, exist_ok=True)
    table = out / "grades.csv"
    with (
        Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook,
        table.open("w", newline="") as f,
    ):
        writer = csv.writer(f)
        writer.writerow(["student", "chapter", "exercise", "score", "max_score"])
        for who, chapter in graded:
            submission = gradebook.find_submission_notebook(chapter, chapter, who)
            order = _grade_ids(course / "source" / chapter / f"{chapter}.ipynb")
            for item in sorted(submission.grades, key=lambda g: order.index(g.name)):
                writer.writerow([who, chapter, item.name, item.score, item.max_score])
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("student", help="write the student notebooks")
    make.add_argument("--out", type=Path, default=STUDENT)
    make.add_argument("chapters", nargs="*", type=Path, help="default: every chapter")
    marks = commands.add_parser("grade", help="autograde submitted notebooks")
    marks.add_argument(
        "submissions", type=Path, help="<folder>/<student>/<chapter>.ipynb"
    )
    marks.add_argument("--out", type=Path, default=GRADING)
    marks.add_argument("--student-dir", type=Path, default=STUDENT)
    args = parser.parse_args(argv)
    if args.command == "student":
        written = student(args.out, [p.resolve() for p in args.chapters] or None)
        print(f"{len(written)} student notebooks (.ipynb and .md) in {args.out}")
    else:
        table = grade(args.submissions, args.out, args.student_dir)
        print(f"scores per student and exercise: {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
