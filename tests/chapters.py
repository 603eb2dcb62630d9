"""Reading the book's chapters as the tests see them: the MyST notebooks in book/,
their prose (markdown cells) and their exercises. Shared by tests/test_prose.py and
tests/test_exercises.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

METHOD_CHAPTERS = ["nnls", "nmf", "ssnmf", "hnmf", "dnmf", "neural_nmf"]
DATA_CHAPTERS = ["experiments", "images", "text"]


def notebooks():
    """Every executed chapter: a .md in book/ whose front matter names a kernel."""
    out = []
    for path in sorted(BOOK.glob("*.md")):
        head = path.read_text(encoding="utf-8")[:2000]
        if head.startswith("---") and "kernelspec:" in head:
            out.append(path)
    return out


def read(name_or_path):
    path = (
        name_or_path if isinstance(name_or_path, Path) else BOOK / f"{name_or_path}.md"
    )
    return jupytext.read(path)


# --- prose -------------------------------------------------------------------------

# Removed before looking for numbers: things that are not prose.
_NOT_PROSE = [
    re.compile(
        r"^(`{3,}|:{3,})\{?(math|code-block|code|literalinclude)\}?.*?^\1\s*$",
        re.S | re.M,
    ),
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),  # inline math
    re.compile(
        r"\{[\w:-]+\}`[^`]*`"
    ),  # roles: {cite:p}`...`, {glue:text}`...`, {ref}`...`
    re.compile(r"``.+?``|`[^`\n]+`"),  # inline code
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    re.compile(r"https?://\S+"),  # addresses
    re.compile(r"^\s*:[\w-]+:.*$", re.M),  # directive options (:label:, :class:, ...)
    re.compile(r"^%.*$", re.M),  # MyST comments (they hold the quoted-number lists)
    # Numbered references, not measurements: "step 2.4", "steps 3.1-3.2", "version 1.0".
    re.compile(
        r"\b(?:[Ss]teps?|[Ss]ections?|[Ee]xercises?|[Ff]igures?|[Tt]ables?|[Vv]ersions?)"
        r"\s+\d+(?:\.\d+)+(?:\s*(?:and|or|to|,|-|–)\s*\d+(?:\.\d+)+)*"
    ),
]
# A number written with a decimal point or an exponent: 0.053, 1.5e-3, 2e-16, 44.4%.
# A full stop may follow (end of a sentence); another digit or letter may not.
_END = r"(?!\w|\.\d)"
_DECIMAL = re.compile(
    rf"(?<![\w.])\d*\.\d+(?:[eE][-+]?\d+)?{_END}|(?<![\w.])\d+[eE][-+]?\d+{_END}"
)
# "% quoted-numbers: 0.053 0.399 (Table 1 of the paper)": numbers this chapter quotes
# from a source; everything up to the first word that is not a number is allowed.
_QUOTED = re.compile(r"^%\s*quoted-numbers:\s*(.*)$", re.M)


def prose(text):
    """The prose of one markdown cell, with math, code, roles and options removed."""
    for pattern in _NOT_PROSE:
        text = pattern.sub(" ", text)
    return text


def quoted_numbers(nb):
    """Numbers a chapter declares as quoted from a source (``% quoted-numbers:``)."""
    allowed = set()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in _QUOTED.findall(cell.source):
            for word in line.split():
                if not _DECIMAL.fullmatch(word.rstrip(",;%")):
                    break
                allowed.add(word.rstrip(",;%"))
    return allowed


def typed_decimals(nb):
    """(cell index, number, line) for every decimal number typed in a chapter's prose
    that the chapter does not declare as quoted."""
    allowed = quoted_numbers(nb)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for line in prose(cell.source).splitlines():
            for number in _DECIMAL.findall(line):
                if number not in allowed:
                    found.append((index, number, line.strip()))
    return found


# --- exercises ---------------------------------------------------------------------

_START = re.compile(r"^(`{3,})\{(exercise|exercise-start)\}\s*(.*)$", re.M)
_SOLUTION = re.compile(r"\{(solution|solution-start)\}\s*([\w-]+)")
_LABEL = re.compile(r"^:label:\s*([\w-]+)", re.M)
GRADES = ("warm-up", "core", "challenge")


@dataclass
class Exercise:
    label: str
    title: str
    gated: bool
    solution: str = ""  # "plain" or "gated" once found
    code_cells: list = field(default_factory=list)  # tags of each code cell in it

    @property
    def kind(self):
        return self.title[:1] if self.title[:1] in ("✍", "⌨") else None

    @property
    def grade(self):
        match = re.search(r"\((warm-up|core|challenge)\)\s*$", self.title)
        return match.group(1) if match else None


def exercises(nb):
    """A chapter's exercises, with their solutions and the code cells inside them."""
    found, by_label, current = [], {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for match in _START.finditer(cell.source):
                rest = cell.source[match.end() :]
                label = _LABEL.search(rest)
                exercise = Exercise(
                    label=label.group(1) if label else "",
                    title=match.group(3).strip(),
                    gated=match.group(2) == "exercise-start",
                )
                found.append(exercise)
                by_label[exercise.label] = exercise
            for match in _SOLUTION.finditer(cell.source):
                exercise = by_label.get(match.group(2))
                if exercise is not None:
                    exercise.solution = (
                        "gated" if match.group(1) == "solution-start" else "plain"
                    )
                    current = exercise if match.group(1) == "solution-start" else None
            if "{solution-end}" in cell.source:
                current = None
        elif current is not None:
            current.code_cells.append(list(cell.metadata.get("tags", [])))
    return found


def headings(nb):
    """Every section title of a chapter (## level and below)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            out += re.findall(r"^#{2,}\s+(.*?)\s*$", cell.source, flags=re.M)
    return out
