"""Sphinx extension for this book (loaded by _config.yml, ``sphinx.local_extensions``).

It does four things that Jupyter Book 1.x does not do by itself.

1. **Hidden solutions for a course build.** ``make course`` sets the environment
   variable ``NNMF_BOOK_HIDE_SOLUTIONS=1``, which turns on sphinx-exercise's
   ``hide_solutions``. With it, sphinx-exercise drops ``{solution}`` blocks but, for
   the gated form (``{solution-start}`` ... ``{solution-end}``), only the opening
   directive: the code cells between the two markers would stay on the page. Here the
   gated form leaves a marker, and a transform removes everything from the marker to
   its ``{solution-end}``.
2. **Student downloads in a course build.** The pages' downloads (``_sources/``: the
   chapter's ``.md`` and executed ``.ipynb``) would still hold every solution. A
   course build replaces both by the student notebooks of ``tools/student.py`` (no
   solutions; stubs and self-checks), which the Colab button then opens; the Binder
   and JupyterHub buttons, which open the repository's chapters (solutions
   included), are left out.
3. **Colab links.** The theme's Colab button points at the chapter's source on GitHub,
   a MyST ``.md`` file, which Colab cannot open. Each page's button is pointed instead
   at the executed ``.ipynb`` that the theme writes to ``_sources/`` and the publishing
   workflow deploys to the ``gh-pages`` branch; that notebook gets a first cell that,
   on Colab only, clones the repository and installs ``nnmf_lib``.
4. **A references page in the citations' style.** The text cites author-year,
   "(Gao et al., 2019)"; the bibliography style ``authoryear`` labels its entries the
   same way (not [GHM+19]), sorted by author and year. Under each entry, "Cited in"
   links to the place of each chapter that cites it (sphinxcontrib-bibtex links back
   only within the references page itself).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx_exercise.directive import SolutionStartDirective
from sphinx_exercise.nodes import solution_end_node

PAGES_BRANCH = "gh-pages"

# The first cell of every downloadable notebook. On Colab it clones the repository,
# installs nnmf_lib's dependencies and works in the chapter's folder, as the book does
# (chapters read data files by relative paths). The clone is also put on sys.path:
# an editable install takes effect only after a restart, and the cell must work in one
# run. Every step is skipped when done, so the cell may run again, after a restart too.
# Elsewhere (JupyterLab, Binder) it does nothing.
COLAB_CELL = """\
# On Colab only: get the book's repository, install its library (nnmf_lib), and work
# in this chapter's folder. Safe to run again, also after restarting the runtime.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    REPOSITORY = "{repo_url}"
    CLONE = "/content/{repo_name}"
    if not os.path.isdir(os.path.join(CLONE, "nnmf_lib")):
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, CLONE], check=True)
    installed = os.path.join(CLONE, ".installed-on-colab")
    if not os.path.exists(installed):
        pip = [sys.executable, "-m", "pip", "install", "-q", "-e", CLONE]
        subprocess.run(pip, check=True)
        open(installed, "w").close()
    if CLONE not in sys.path:  # importable now, without restarting the runtime
        sys.path.insert(0, CLONE)
    os.chdir(os.path.join(CLONE, "{folder}"))
"""
COLAB_CELL_ID = "colab-setup"


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


def colab_cell(url: str, folder: str) -> dict:
    """The setup cell for a notebook in ``folder`` of the repository at ``url``."""
    source = COLAB_CELL.format(
        repo_url=url, repo_name=url.rstrip("/").split("/")[-1], folder=folder
    )
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": COLAB_CELL_ID,
        "metadata": {"colab_setup": True, "tags": ["remove-cell"]},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def with_colab_cell(notebook: dict, url: str, folder: str) -> dict:
    """The notebook with the setup cell first (once), in nbformat 4.5 (cell ids)."""
    cells = [c for c in notebook["cells"] if c.get("id") != COLAB_CELL_ID]
    for index, cell in enumerate(cells):
        cell.setdefault("id", f"cell-{index}")
    notebook["nbformat"], notebook["nbformat_minor"] = (
        4,
        max(5, notebook.get("nbformat_minor", 0)),
    )
    notebook["cells"] = [colab_cell(url, folder), *cells]
    return notebook


def add_colab_cell(app, exception):
    """Insert the Colab setup cell at the top of every downloadable notebook."""
    repository = _repository(app)
    if exception is not None or repository is None or app.builder.format != "html":
        return
    sources = Path(app.outdir, "_sources")
    for path in sources.rglob("*.ipynb"):
        folder = path.parent.relative_to(sources).as_posix()
        notebook = json.loads(path.read_text(encoding="utf-8"))
        notebook = with_colab_cell(notebook, repository[0], folder)
        path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def _student_module():
    spec = importlib.util.spec_from_file_location(
        "student", Path(__file__).with_name("student.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("student", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def ship_student_notebooks(app, exception):
    """In a course build, the downloads are the student notebooks."""
    if exception is not None or not app.config.hide_solutions:
        return
    if app.builder.format != "html":
        return
    sources = Path(app.outdir, "_sources")
    chapters = {}
    for notebook in sources.rglob("*.ipynb"):
        source = Path(app.srcdir, notebook.relative_to(sources)).with_suffix(".md")
        if source.exists():
            chapters[source] = notebook
    if not chapters:
        return
    student = _student_module()
    with tempfile.TemporaryDirectory() as folder:
        student.student(Path(folder), sorted(chapters))
        for source, notebook in chapters.items():
            shutil.copy(Path(folder, f"{source.stem}.ipynb"), notebook)
            # The page's source download: <page>.md, or <page>.md.txt
            markdown = list(notebook.parent.glob(f"{source.stem}.md*"))
            for target in markdown or [notebook.with_suffix(".md")]:
                shutil.copy(Path(folder, f"{source.stem}.md"), target)


def drop_repository_launchers(app, pagename, templatename, context, doctree):
    """A course build has no Binder or JupyterHub button: they would open the
    repository's chapters, solutions included."""
    if not app.config.hide_solutions:
        return
    for group in context.get("header_buttons", []):
        if "buttons" in group:
            group["buttons"] = [
                b
                for b in group["buttons"]
                if b.get("text") not in ("Binder", "JupyterHub")
            ]


class AuthorYearLabels(BaseLabelStyle):
    """Labels as the text cites: "Gao", "Lee and Seung", "Gao et al.", then the year;
    "2019a", "2019b" when two entries would get the same label."""

    def format_labels(self, sorted_entries):
        labels = [self._label(entry) for entry in sorted_entries]
        counts = Counter(labels)
        seen = Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label

    @staticmethod
    def _label(entry):
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [
            Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text")
            for p in persons
        ]
        if len(names) > 2 or names[1:] == ["others"]:  # BibTeX's "and others"
            who = f"{names[0]} et al."
        else:
            who = " and ".join(names) or entry.fields.get("title", entry.key)
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """pybtex's unsrt entries, labelled and sorted by author and year."""

    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


class CitedIn(SphinxPostTransform):
    """Under each entry of a bibliography: "Cited in" and a link to the first place
    of each page that cites it."""

    default_priority = 6  # after sphinxcontrib-bibtex fills the bibliography (5)

    def run(self, **kwargs):
        citations = list(self.document.findall(nodes.citation))
        if not citations or "cite" not in self.env.domains:
            return  # no bibliography here, or no sphinxcontrib-bibtex in this book
        domain = self.env.get_domain("cite")
        keys = {c.citation_id: c.key for c in domain.citations}
        places: dict[str, dict[str, str]] = {}
        for ref in domain.citation_refs:
            for target in ref.targets:
                places.setdefault(target.key, {}).setdefault(
                    ref.docname, ref.citation_ref_id
                )
        builder = self.app.builder
        for citation in citations:
            key = next((keys[i] for i in citation["ids"] if i in keys), None)
            cited = places.get(key, {})
            if not cited or builder.format != "html":
                continue
            paragraph = nodes.paragraph("", "", classes=["cited-in"])
            paragraph += nodes.emphasis("", "Cited in ")
            for number, (docname, ref_id) in enumerate(sorted(cited.items())):
                if number:
                    paragraph += nodes.Text(", ")
                uri = builder.get_relative_uri(self.env.docname, docname)
                title = self.env.titles[docname].astext()
                paragraph += nodes.reference("", title, refuri=f"{uri}#{ref_id}")
            citation += paragraph


def add_static_files(app, config):
    """The book's style sheet (tools/static/nnmf_book.css)."""
    config.html_static_path.append(str(Path(__file__).with_name("static")))


def hide_solutions_from_environment(app, config):
    if os.environ.get("NNMF_BOOK_HIDE_SOLUTIONS", "0") not in ("", "0"):
        config.hide_solutions = True


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.connect("config-inited", hide_solutions_from_environment)
    app.connect("config-inited", add_static_files)
    app.add_css_file("nnmf_book.css")
    app.add_node(hidden_solution)
    app.add_directive("solution-start", HiddenSolutionStart, override=True)
    app.add_transform(RemoveHiddenSolutions)
    app.connect("html-page-context", point_colab_at_notebook, priority=502)
    app.connect("html-page-context", drop_repository_launchers, priority=503)
    app.connect("build-finished", ship_student_notebooks, priority=400)
    app.connect("build-finished", add_colab_cell)
    register_plugin(
        "pybtex.style.formatting", "authoryear", AuthorYearStyle, force=True
    )
    app.add_post_transform(CitedIn)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
