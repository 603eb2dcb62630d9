"""Put the chapters that the tests executed into the book build's execution cache.

``make test`` runs every chapter once, through nbval (``pytest --executed-notebooks
_build/executed``), which saves each chapter with its outputs. This script adds those
notebooks to the jupyter-cache that ``jupyter-book build`` consults
(``execute_notebooks: cache``), so the build renders them instead of executing the
chapters a second time. The cache matches a notebook by its code and kernel only, so a
chapter whose source changed after the tests ran is not matched, and gets executed.

usage: python tools/seed_cache.py EXECUTED_DIR CACHE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

ROOT = Path(__file__).resolve().parents[1]


def seed(executed: Path, cache_dir: Path) -> int:
    cache = get_cache(str(cache_dir))
    count = 0
    for path in sorted(executed.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        seconds = nb.metadata.pop("nnmf_execution_seconds", None)
        source = ROOT / "book" / f"{path.stem}.md"
        cache.cache_notebook_bundle(
            CacheBundleIn(nb, str(source), data={"execution_seconds": seconds}),
            check_validity=False,
            overwrite=True,
        )
        count += 1
    return count


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    count = seed(Path(argv[1]), Path(argv[2]))
    print(f"seed_cache: {count} executed chapters added to {argv[2]}")


if __name__ == "__main__":
    main(sys.argv)
