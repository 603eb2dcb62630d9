"""Run every chapter (a MyST Markdown notebook in book/) as a test through nbval.

nbval collects only ``.ipynb`` files. This hook also collects a ``.md`` file whose front
matter declares a kernel: jupytext reads it into a notebook, which nbval then executes
cell by cell in a fresh kernel whose working directory is the chapter's folder (as in
``jupyter-book build``). A failing cell fails the test ``book/<chapter>.md::Cell <n>``.
"""

from __future__ import annotations

import types

import jupytext
import nbformat
import nbval.plugin


def _is_notebook(path) -> bool:
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec:" in head


class MystNotebookFile(nbval.plugin.IPyNbFile):
    """An nbval collector whose notebook is read from MyST Markdown by jupytext."""

    def collect(self):
        nb = jupytext.read(self.path)
        for (
            cell
        ) in nb.cells:  # cells that the book does not execute are not tested either
            tags = cell.metadata.get("tags", [])
            if "skip-execution" in tags:
                cell.metadata["tags"] = [*tags, "nbval-skip"]
        # nbval reads the file with nbformat.read exactly once, inside collect().
        original = nbval.plugin.nbformat
        nbval.plugin.nbformat = types.SimpleNamespace(
            read=lambda *args, **kwargs: nb, from_dict=nbformat.from_dict
        )
        try:
            yield from super().collect()
        finally:
            nbval.plugin.nbformat = original


def pytest_collect_file(file_path, parent):
    option = parent.config.option
    if (option.nbval or option.nbval_lax) and _is_notebook(file_path):
        return MystNotebookFile.from_parent(parent, path=file_path)
    return None
