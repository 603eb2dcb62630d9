"""Run every chapter (a MyST Markdown notebook in book/) as a test through nbval.

nbval collects only ``.ipynb`` files. This hook also collects a ``.md`` file whose front
matter declares a kernel: jupytext reads it into a notebook, which nbval then executes
cell by cell in a fresh kernel whose working directory is the chapter's folder (as in
``jupyter-book build``). A failing cell fails the test ``book/<chapter>.md::Cell <n>``.

With ``--executed-notebooks DIR``, each chapter whose cells all ran without error is
also written to ``DIR/<chapter>.ipynb`` with the outputs nbval received, so that the
book build can render them instead of executing the chapter a second time
(``tools/seed_cache.py`` puts them into the build's execution cache).
"""

from __future__ import annotations

import time
import types
from pathlib import Path

import jupytext
import nbformat
import nbval.plugin

# Chapters that take longest start first, so that two workers (pytest -n 2) finish
# together; the others follow in alphabetical order.
SLOW_FIRST = ["text", "images", "experiments", "nmf", "hnmf", "ssnmf", "neural_nmf"]


def pytest_addoption(parser):
    parser.addoption(
        "--executed-notebooks",
        metavar="DIR",
        default=None,
        help="write each chapter that ran without error, with its outputs, to DIR",
    )


def _is_notebook(path) -> bool:
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec:" in head


class MystNotebookFile(nbval.plugin.IPyNbFile):
    """An nbval collector whose notebook is read from MyST Markdown by jupytext."""

    def collect(self):
        nb = jupytext.read(self.path)
        for cell in nb.cells:  # cells the book does not execute are not tested either
            tags = cell.metadata.get("tags", [])
            if "skip-execution" in tags:
                cell.metadata["tags"] = [*tags, "nbval-skip"]
        # nbval reads the file with nbformat.read exactly once, inside collect().
        original = nbval.plugin.nbformat
        nbval.plugin.nbformat = types.SimpleNamespace(
            read=lambda *args, **kwargs: nb, from_dict=nbformat.from_dict
        )
        try:
            self.cells = list(super().collect())
        finally:
            nbval.plugin.nbformat = original
        yield from self.cells

    def setup(self):
        self.started = time.perf_counter()
        super().setup()

    def teardown(self):
        super().teardown()
        folder = self.config.getoption("executed_notebooks")
        if folder:
            self.write_executed(Path(folder))

    def write_executed(self, folder: Path):
        """Save the chapter with the outputs nbval received, if every cell ran."""
        ran = [getattr(item, "test_outputs", None) for item in self.cells]
        skipped = [item.options["skip"] for item in self.cells]
        for outputs, skip in zip(ran, skipped, strict=True):
            if skip:
                continue
            if outputs is None or any(o.output_type == "error" for o in outputs):
                return  # a cell failed or did not run: nothing to reuse
        nb = jupytext.read(self.path)  # as the book reads it (no nbval-skip tags)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        for count, (cell, outputs) in enumerate(zip(code, ran, strict=True), start=1):
            cell.outputs = [_as_output(o) for o in outputs or []]
            cell.execution_count = count if outputs is not None else None
        nb.metadata["nnmf_execution_seconds"] = time.perf_counter() - self.started
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{self.path.stem}.ipynb")


def _as_output(out):
    """An nbval output record as a valid nbformat output."""
    kind = out.output_type
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=out.name, text=out.text)
    if kind == "error":
        return nbformat.v4.new_output(
            "error", ename=out.ename, evalue=out.evalue, traceback=out.traceback
        )
    if kind == "execute_result":
        return nbformat.v4.new_output(
            "execute_result",
            data=out.data,
            metadata=out.metadata,
            execution_count=out.get("execution_count"),
        )
    return nbformat.v4.new_output("display_data", data=out.data, metadata=out.metadata)


def pytest_collect_file(file_path, parent):
    option = parent.config.option
    if (option.nbval or option.nbval_lax) and _is_notebook(file_path):
        return MystNotebookFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items):
    """Slow chapters first (stable otherwise): with two workers they overlap the
    rest."""

    def rank(item):
        path = Path(str(item.path))
        if path.suffix == ".md" and path.stem in SLOW_FIRST:
            return SLOW_FIRST.index(path.stem)
        return len(SLOW_FIRST)

    items.sort(key=rank)
