"""``make test``: every check of the project, each chapter executed once.

Phases, in order (the run stops at the first that fails, and prints the time each
phase took either way):

1. lint: ruff on the code, and on the chapters' code cells through jupytext;
2. unit tests: tests/ and the docstring examples of nnmf_lib, on both cores;
3. chapters: every chapter through nbval, on both cores; each chapter that passes is
   saved with its outputs to _build/executed/;
4. book: the saved chapters go into the build's execution cache
   (tools/seed_cache.py), then the book is built from clean with warnings as errors;
   the build must not execute any chapter again;
5. browser: every page of the built book in headless Chromium (tools/check_site.py).

usage: python tools/run_tests.py [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUILD = ROOT / "_build"
EXECUTED = BUILD / "executed"


def run(*command, **kwargs):
    print("+", " ".join(str(c) for c in command), flush=True)
    return subprocess.run([str(c) for c in command], cwd=ROOT, **kwargs).returncode


def lint():
    failed = run(BIN / "ruff", "check", ".")
    failed = failed or run(BIN / "ruff", "format", "--check", ".")
    for chapter in sorted((ROOT / "book").glob("*.md")):
        if "kernelspec:" not in chapter.read_text(encoding="utf-8")[:2000]:
            continue
        script = subprocess.run(
            [BIN / "jupytext", "--to", "py:percent", "-o", "-", chapter],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # Prose becomes comment lines in the script, hence no line-length rule; a
        # notebook imports where a cell first needs a module (exercises), hence no E402.
        name = f"{chapter.relative_to(ROOT)}.py"
        ignore = ["--ignore", "E501,E402"]
        check = [BIN / "ruff", "check", *ignore, "--stdin-filename", name, "-"]
        failed |= subprocess.run(check, input=script, text=True, cwd=ROOT).returncode
    return failed


def unit_tests(workers):
    return run(
        BIN / "pytest", "-n", workers, "--dist", "loadfile", "tests",
        "--doctest-modules", "nnmf_lib",
    )  # fmt: skip


def chapters(workers):
    shutil.rmtree(EXECUTED, ignore_errors=True)
    return run(
        BIN / "pytest", "-n", workers, "--dist", "loadfile", "book",
        "--executed-notebooks", EXECUTED,
    )  # fmt: skip


def book():
    for stale in ("html", ".doctrees", ".jupyter_cache", "jupyter_execute"):
        shutil.rmtree(BUILD / stale, ignore_errors=True)
    failed = run(BIN / "python", ROOT / "tools" / "seed_cache.py", EXECUTED,
                 BUILD / ".jupyter_cache")  # fmt: skip
    if failed:
        return failed
    log = BUILD / "build.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [BIN / "jupyter-book", "build", ".", "-W", "-n", "--keep-going"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        failed = proc.wait()
    executed = [line for line in log.read_text().splitlines() if "Executing" in line]
    if executed:
        print("The build executed chapters that the tests had already run:")
        print("\n".join(executed))
        failed = failed or 1
    return failed


def browser():
    return run(BIN / "python", ROOT / "tools" / "check_site.py", BUILD / "html",
               "--screenshots", BUILD / "screenshots")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default=str(os.cpu_count() or 2))
    args = parser.parse_args()
    phases = [
        ("lint", lint),
        ("unit tests", lambda: unit_tests(args.workers)),
        ("chapters", lambda: chapters(args.workers)),
        ("book build", book),
        ("browser check", browser),
    ]
    times, status = [], 0
    for name, phase in phases:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        status = phase()
        times.append((name, time.perf_counter() - start, status))
        if status:
            break
    print("\n=== time per phase ===")
    for name, seconds, failed in times:
        print(f"{name:14s} {seconds:7.1f} s  {'FAILED' if failed else 'ok'}")
    print(f"{'total':14s} {sum(t for _, t, _ in times):7.1f} s")
    sys.exit(1 if status else 0)


if __name__ == "__main__":
    main()
