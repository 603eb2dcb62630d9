"""Checks of the project's plumbing: the environments agree, CI runs the README's
test command, every chapter is in the table of contents, and the chapter-test wiring
fails when a chapter's assert fails."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import yaml
from helpers import MYST_HEADER
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def _requirements(specs):
    reqs = {}
    for spec in specs:
        req = Requirement(spec)
        reqs[req.name.lower().replace("_", "-")] = str(req.specifier)
    return reqs


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            conda.append(dep)
    assert "pip" in conda and any(d.startswith("python") for d in conda)
    assert "-e ." in pip, "environment.yml must install nnmf_lib itself"
    listed = [d for d in pip if d != "-e ."] + [
        d.replace("=", "==", 1) if re.fullmatch(r"[\w-]+=[\d.]+", d) else d
        for d in conda
        if d != "pip" and not d.startswith("python")
    ]
    assert _requirements(listed) == _requirements(wanted)


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```(?:bash|sh)\n(.*?)^```", text, flags=re.M | re.S)


def test_ci_runs_the_readme_test_command():
    blocks = [b.strip() for b in _readme_commands()]
    assert "make book" in blocks and "make test" in blocks
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [
        line.strip()
        for line in ci.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert commands == ["make test"]


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    files += [c["file"] for c in toc.get("chapters", [])]
    on_disk = {
        str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").glob("*.md")
    }
    assert set(files) == on_disk
    for f in files:
        assert (ROOT / f"{f}.md").exists()


def test_no_paired_notebooks_next_to_chapters():
    assert not list((ROOT / "book").glob("*.ipynb")), (
        "paired .ipynb files break the build"
    )


FAILING_CHAPTER = (
    MYST_HEADER
    + """

# A chapter with a false claim

```{code-cell} ipython3
from nnmf_lib import nnls
S = nnls([[1.0]], [[2.0]])
```

```{code-cell} ipython3
:tags: [remove-cell]

assert S[0, 0] == 3.0, f"expected 3, got {S[0, 0]}"
```

```{code-cell} ipython3
:tags: [skip-execution]

raise RuntimeError("never runs: tagged skip-execution")
```
"""
)


def test_a_failing_assert_in_a_chapter_fails_the_test_run(pytester):
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    book = pytester.mkdir("book")
    (book / "false_claim.md").write_text(FAILING_CHAPTER)
    (book / "plain.md").write_text("# Not a notebook\n\nNo kernelspec here.\n")
    result = pytester.runpytest_subprocess(
        "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "book"
    )
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*FAILED book/false_claim.md::Cell 1*"])
    result.stdout.fnmatch_lines(["*AssertionError*: expected 3, got 2.0*"])


def test_publishing_workflow_builds_with_the_readme_command_and_deploys_the_html():
    workflow = yaml.safe_load((ROOT / ".github/workflows/publish.yml").read_text())
    steps = workflow["jobs"]["publish"]["steps"]
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert runs == ["make book"] and "make book" in _readme_commands()[0]
    deploy = [s for s in steps if "actions-gh-pages" in s.get("uses", "")]
    assert deploy and deploy[0]["with"]["publish_dir"] == "_build/html"
    # The Colab buttons (tools/book_extension.py) point at this branch.
    assert deploy[0]["with"]["publish_branch"] == "gh-pages"
    assert 'PAGES_BRANCH = "gh-pages"' in (ROOT / "tools/book_extension.py").read_text()


def test_binder_installs_the_library_and_opens_chapters_as_notebooks():
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    text = post_build.read_text()
    assert 'pip install --no-cache-dir -e ".[book]"' in text
    assert "binder/overrides.json" in text
    book = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("jupytext") for d in book["optional-dependencies"]["book"])
    # MyST (admonitions, exercises, folded solutions) rendered in JupyterLab.
    extra = book["optional-dependencies"]["book"]
    assert any(d.startswith("jupyterlab-myst") for d in extra)
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["launch_buttons"]["notebook_interface"] == "jupyterlab"
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
