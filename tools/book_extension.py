"""Sphinx extension for this book (loaded by _config.yml, ``sphinx.local_extensions``).

It does two things that Jupyter Book 1.x does not do by itself.

1. **Hidden solutions for a course build.** ``make course`` sets the environment
   variable ``NNMF_BOOK_HIDE_SOLUTIONS=1``, which turns on sphinx-exercise's
   ``hide_solutions``. With it, sphinx-exercise drops ``{solution}`` blocks but, for
   the gated form (``{solution-start}`` ... ``{solution-end}``), only the opening
   directive: the code cells between the two markers would stay on the page. Here the
   gated form leaves a marker, and a transform removes everything from the marker to
   its ``{solution-end}``.
2. **Colab links.** The theme's Colab button points at the chapter's source on GitHub,
   a MyST ``.md`` file, which Colab cannot open. Each page's button is pointed instead
   at the executed ``.ipynb`` that the theme writes to ``_sources/`` and the publishing
   workflow deploys to the ``gh-pages`` branch; that notebook gets a first cell that,
   on Colab only, clones the repository and installs ``nnmf_lib``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx_exercise.directive import SolutionStartDirective
from sphinx_exercise.nodes import solution_end_node

PAGES_BRANCH = "gh-pages"

COLAB_CELL = """\
# On Colab only: get the book's repository and install its library, nnmf_lib.
import os
import subprocess
import sys

if "google.colab" in sys.modules and not os.path.isdir("/content/nnmf-book"):
    repo = "{repo_url}"
    clone = ["git", "clone", "--depth", "1", repo, "/content/nnmf-book"]
    subprocess.run(clone, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-e", "/content/nnmf-book"],
        check=True,
    )
    os.chdir("/content/nnmf-book/{folder}")
"""


class hidden_solution(nodes.Element):
    """Marks where a gated solution began, in a build without solutions."""


class HiddenSolutionStart(SolutionStartDirective):
    def run(self):
        shown = super().run()  # keeps sphinx-exercise's bookkeeping of gated blocks
        if self.env.app.config.hide_solutions:
            return [hidden_solution()]
        return shown


class RemoveHiddenSolutions(SphinxTransform):
    """Remove each hidden gated solution, up to and including its ``solution-end``."""

    default_priority = 5  # before sphinx-exercise's transforms (10)

    def apply(self):
        for marker in list(self.document.findall(hidden_solution)):
            parent = marker.parent
            start = parent.index(marker)
            for end in range(start, len(parent.children)):
                if isinstance(parent.children[end], solution_end_node):
                    break
            else:
                raise ValueError(f"{self.env.docname}: solution-start without -end")
            for child in parent.children[start : end + 1]:
                parent.remove(child)


def _repository(app):
    options = app.config.html_theme_options
    url = options.get("repository_url", "").rstrip("/")
    if "github.com/" not in url:
        return None
    org, repo = url.split("github.com/")[1].split("/")[:2]
    return url, org, repo


def point_colab_at_notebook(app, pagename, templatename, context, doctree):
    """Replace the Colab button's URL by the deployed executed notebook's."""
    repository = _repository(app)
    if repository is None or "ipynb_source" not in context:
        return
    _, org, repo = repository
    colab = app.config.html_theme_options.get("launch_buttons", {}).get("colab_url")
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            if button.get("text") == "Colab":
                button["url"] = (
                    f"{colab.rstrip('/')}/github/{org}/{repo}/blob/{PAGES_BRANCH}"
                    f"/_sources/{context['ipynb_source']}"
                )


def add_colab_cell(app, exception):
    """Insert the Colab setup cell at the top of every downloadable notebook."""
    repository = _repository(app)
    if exception is not None or repository is None or app.builder.format != "html":
        return
    url = repository[0]
    for path in Path(app.outdir, "_sources").rglob("*.ipynb"):
        folder = path.parent.relative_to(Path(app.outdir, "_sources")).as_posix()
        notebook = json.loads(path.read_text(encoding="utf-8"))
        source = COLAB_CELL.format(repo_url=url, folder=folder)
        cells = notebook["cells"]
        if cells and cells[0].get("metadata", {}).get("colab_setup"):
            continue
        cell = {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {"colab_setup": True, "tags": ["remove-cell"]},
            "outputs": [],
            "source": source.splitlines(keepends=True),
        }
        notebook["cells"] = [cell, *cells]
        path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def hide_solutions_from_environment(app, config):
    if os.environ.get("NNMF_BOOK_HIDE_SOLUTIONS", "0") not in ("", "0"):
        config.hide_solutions = True


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.connect("config-inited", hide_solutions_from_environment)
    app.add_node(hidden_solution)
    app.add_directive("solution-start", HiddenSolutionStart, override=True)
    app.add_transform(RemoveHiddenSolutions)
    app.connect("html-page-context", point_colab_at_notebook, priority=502)
    app.connect("build-finished", add_colab_cell)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
