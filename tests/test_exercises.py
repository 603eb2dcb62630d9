"""Every chapter ends with Key points, Further reading and enough exercises, each marked
as a pen-and-paper (✍) or a computer (⌨) exercise and graded warm-up, core or
challenge. A ⌨ exercise has a gated solution whose code runs when the book is built and
a hidden check cell (tags ``remove-cell`` and ``check``) that tests the answer."""

from __future__ import annotations

import pytest
from chapters import DATA_CHAPTERS, GRADES, METHOD_CHAPTERS, exercises, headings, read

MINIMUM = {**dict.fromkeys(METHOD_CHAPTERS, 8), **dict.fromkeys(DATA_CHAPTERS, 5)}


@pytest.mark.parametrize("chapter", list(MINIMUM))
def test_enough_exercises_each_tagged_and_graded(chapter):
    found = exercises(read(chapter))
    assert len(found) >= MINIMUM[chapter], f"{chapter}: {len(found)} exercises"
    for ex in found:
        assert ex.label.startswith("ex-"), f"{chapter}: exercise without label {ex}"
        assert ex.kind, f"{chapter}: {ex.label} title has no ✍/⌨ tag: {ex.title!r}"
        assert ex.grade in GRADES, f"{chapter}: {ex.label} has no grade: {ex.title!r}"
        assert ex.solution, f"{chapter}: {ex.label} has no solution"


@pytest.mark.parametrize("chapter", list(MINIMUM))
def test_code_exercises_run_and_are_checked(chapter):
    for ex in exercises(read(chapter)):
        if ex.kind != "⌨":
            continue
        assert ex.gated and ex.solution == "gated", f"{chapter}: {ex.label} not gated"
        shown = [tags for tags in ex.code_cells if "remove-cell" not in tags]
        checks = [tags for tags in ex.code_cells if "check" in tags]
        assert shown, f"{chapter}: {ex.label} has no solution code"
        assert checks, f"{chapter}: {ex.label} has no check cell"
        assert all("remove-cell" in tags for tags in checks)


@pytest.mark.parametrize("chapter", METHOD_CHAPTERS)
def test_method_chapters_end_with_key_points_and_further_reading(chapter):
    titles = headings(read(chapter))
    assert "Key points" in titles and "Further reading" in titles, chapter
    assert titles.index("Key points") < titles.index("Exercises")
