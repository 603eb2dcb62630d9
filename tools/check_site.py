"""Check a built book in a real browser: every page, as a reader would see it.

Serves the HTML build on 127.0.0.1, opens every page in headless Chromium (Debian's
``chromium``, driven by Playwright through ``executable_path``; no browser is ever
downloaded) and reports:

- math that MathJax did not typeset, or typeset as an error (a TeX syntax error, an
  undefined macro), and TeX delimiters left in the text;
- an image that did not load, and any page resource (script, style sheet, image) that
  the server could not serve;
- a JavaScript error, unless it is one of the known harmless ones in ``HARMLESS``;
- a link to a page of the site, or to an anchor in it, that does not exist;
- an exercise solution that is not collapsible (or, with ``--no-solutions``, any
  solution at all: a solution box on a page, or a solution's text or code on a page,
  in a download under ``_sources/`` or in the search index; the solutions are read
  from the chapters, ``--chapters book``).

Every page is opened a second time as on a phone, 390 px wide, where the check fails if
the page body scrolls sideways (a code block or a display formula may scroll inside its
own box), if the menu button does not open the table of contents, or if the contents
button does not open the page's table of contents.

A full-page screenshot of every page at both widths is saved to the screenshot folder
(``<page>.png`` at 1280 px, ``<page>@390.png`` at 390 px). Usage::

    python tools/check_site.py _build/html --screenshots _build/screenshots

The exit status is 1 if any problem was found; every problem is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Set (to anything but 0) to skip the browser check, on a machine without Chromium.
NO_BROWSER = "NO_BROWSER"

# JavaScript errors that do not affect a reader, each with the reason it is harmless.
HARMLESS = {
    "Identifier 'THEBE_JS_URL' has already been declared": (
        "sphinx-thebe 0.3 adds its inline configuration script twice to pages with "
        "launch buttons; the second copy fails, the first already did the work."
    ),
    "Got invalid theme mode": (
        "pydata-sphinx-theme reads the light/dark mode from localStorage, which is "
        "empty in a fresh browser profile; it falls back to the default mode."
    ),
}

# Resources that may be missing: browsers ask for /favicon.ico on their own.
OPTIONAL_RESOURCES = ("/favicon.ico",)

# The phone the site is checked on (an iPhone 12 to 15 is 390 x 844 CSS pixels).
PHONE = {"width": 390, "height": 844}

# Folders of the build that hold assets and downloads, not pages.
NOT_PAGES = ("_static", "_sources", "_images", "_sphinx_design_static")

# Run in the page after it has loaded: wait for MathJax, load every image, then measure.
INSPECT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done);
    setTimeout(done, 10000);
  })));
  const mathElements = Array.from(document.querySelectorAll(".math"));
  const untypeset = mathElements
    .filter(el => !el.querySelector("mjx-container"))
    .map(el => el.textContent.trim().slice(0, 80));
  const errors = Array.from(document.querySelectorAll("mjx-container"))
    .filter(el => el.querySelector("mjx-merror, [data-mjx-error]"))
    .map(el => el.querySelector("mjx-merror, [data-mjx-error]"))
    .map(el => (el.getAttribute("data-mjx-error") || "error").slice(0, 80));
  // MathJax typesets an undefined macro as red text (its glyphs are CSS, so the
  // page's text does not show it): look in the MathML of every typeset formula.
  const undefinedMacros = [];
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      if (/<mtext[^>]*mathcolor="red"[^>]*>\\[A-Za-z]+/.test(mml)) {
        undefinedMacros.push(item.math.slice(0, 80));
      }
    }
  }
  // TeX delimiters in visible text (code is exempt).
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const rawTex = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.parentElement || node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    if (/\$\$|\\\(|\\\[|\\begin\{|\$[^$\s](?:[^$]*[^$\s\\])?\$/.test(text)) {
      rawTex.push(text.trim().slice(0, 80));
    }
  }
  const brokenImages = images
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.getAttribute("src"));
  const solutions = Array.from(document.querySelectorAll("div.solution"));
  const links = Array.from(document.querySelectorAll("a[href]"))
    .map(a => a.getAttribute("href"));
  const ids = Array.from(document.querySelectorAll("[id], a[name]"))
    .map(el => el.id || el.getAttribute("name"));
  const article = document.querySelector("main") || document.body;
  return {
    text: article.textContent,
    mathCount: document.querySelectorAll("mjx-container").length,
    untypeset, errors, undefinedMacros, rawTex, brokenImages, links, ids,
    solutions: solutions.length,
    fixedSolutions: solutions.filter(s => !s.classList.contains("dropdown")).length,
  };
}
"""


# Run in the page at phone width: does the page body scroll sideways, and because of
# which element? An element inside a box that scrolls or clips (a code block, display
# math, a wide table in its scroll wrapper) does not count; the outermost element that
# sticks out of the viewport is named.
OVERFLOW = r"""
() => {
  const width = document.documentElement.clientWidth;
  const overflow = document.documentElement.scrollWidth - width;
  if (overflow <= 0) return {overflow, culprits: []};
  // Inside a box that scrolls or clips, or fixed to the viewport (an off-canvas
  // drawer): it does not widen the page.
  const clipped = el => {
    if (getComputedStyle(el).position === "fixed") return true;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.overflowX !== "visible" || style.position === "fixed") return true;
    }
    return false;
  };
  const found = new Map();  // the widest elements that stick out, one per name
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 0.5 || clipped(el)) continue;
    const parent = el.parentElement.getBoundingClientRect();
    if (parent.right > width + 0.5 && el.parentElement !== document.body) continue;
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      Array.from(el.classList).slice(0, 3).map(c => "." + c).join("");
    const excess = Math.round(box.right - width);
    if (!found.has(name) || found.get(name).excess < excess) {
      const text = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 50);
      found.set(name, {excess, text});
    }
  }
  const culprits = Array.from(found.entries())
    .sort((a, b) => b[1].excess - a[1].excess).slice(0, 5)
    .map(([name, f]) => `${name} (${f.excess} px too wide): ${f.text}`);
  return {overflow, culprits};
}
"""

# Run in the page: is a link of the panel on screen, and on top (not covered)?
SHOWN_LINKS = r"""
(panel) => {
  const links = Array.from(document.querySelectorAll(panel + " a[href]"));
  const width = document.documentElement.clientWidth;
  const height = window.innerHeight;
  return links.filter(a => {
    const box = a.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return false;
    const x = box.left + Math.min(box.width / 2, 20), y = box.top + box.height / 2;
    if (x < 0 || y < 0 || x > width || y > height) return false;
    const top = document.elementFromPoint(x, y);
    return top !== null && (top === a || a.contains(top));
  }).length;
}
"""

# The two drawers of the theme at phone width: the button that opens each, and where
# its links are (pydata-sphinx-theme moves the sidebar into a <dialog> when opened).
DRAWERS = {
    "menu": (".primary-toggle", "#pst-primary-sidebar-modal, #pst-primary-sidebar"),
    "contents": (
        ".secondary-toggle",
        "#pst-secondary-sidebar-modal, #pst-secondary-sidebar",
    ),
}


@dataclass
class PageReport:
    """What one page showed: its math, images, links, solutions and errors."""

    page: str
    math: int = 0
    images: int = 0
    solutions: int = 0
    problems: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    text: str = ""  # the text of the page's main content, as the browser has it


def browser_skipped() -> bool:
    return os.environ.get(NO_BROWSER, "0") not in ("", "0")


def find_chromium() -> str:
    """Path of the system's Chromium (or of the browser named by the environment
    variable CHROMIUM), or an error saying how to install it."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(
        "check_site: no Chromium found. Install Debian's: apt-get install -y chromium "
        "(`make test` does this where it can), or set CHROMIUM to a Chrome or Chromium "
        "executable, or NO_BROWSER=1 to skip the browser check."
    )


def pages_of(root: Path) -> list[str]:
    """Every HTML page of the build, as paths relative to ``root``."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        relative = path.relative_to(root)
        if relative.parts[0] not in NOT_PAGES:
            pages.append(relative.as_posix())
    return pages


@contextlib.contextmanager
def serve(root: Path):
    """Serve ``root`` on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def harmless(message: str) -> bool:
    return any(known in message for known in HARMLESS)


REDIRECT = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)


def inspect_page(
    browser, base: str, root: Path, page: str, screenshots: Path | None
) -> PageReport:
    """Open one page, wait for it to render, and record what is wrong with it."""
    report = PageReport(page)
    redirect = REDIRECT.search((root / page).read_text(errors="replace"))
    if redirect:  # a redirect page (index.html): only its target is checked
        report.links = [redirect.group(1)]
        return report
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))

    def on_response(response):
        path = urlparse(response.url).path
        if response.url.startswith(base) and response.status >= 400:
            if path not in OPTIONAL_RESOURCES:
                report.problems.append(f"resource {path}: HTTP {response.status}")

    tab.on("response", on_response)
    tab.on(
        "requestfailed",
        lambda r: (
            report.problems.append(f"resource {r.url}: {r.failure}")
            if r.url.startswith(base)
            else None
        ),
    )
    tab.goto(base + page, wait_until="load")
    found = tab.evaluate(INSPECT)
    tab.wait_for_timeout(200)  # let late console messages arrive
    report.math = found["mathCount"]
    report.solutions = found["solutions"]
    report.links = found["links"]
    report.ids = set(found["ids"])
    report.text = found["text"]
    for text in found["untypeset"]:
        report.problems.append(f"math not typeset: {text!r}")
    for text in found["errors"]:
        report.problems.append(f"math error: {text!r}")
    for text in found["undefinedMacros"]:
        report.problems.append(f"undefined TeX macro: {text!r}")
    for text in found["rawTex"]:
        report.problems.append(f"TeX left in the text: {text!r}")
    for src in found["brokenImages"]:
        report.problems.append(f"image did not load: {src}")
    if found["fixedSolutions"]:
        report.problems.append(
            f"{found['fixedSolutions']} solution(s) not in a collapsible dropdown"
        )
    for message in errors:
        if not harmless(message) and not any(o in message for o in OPTIONAL_RESOURCES):
            if "Failed to load resource" in message:
                continue  # reported with its URL by on_response
            report.problems.append(f"JavaScript error: {message}")
    if screenshots is not None:
        tab.screenshot(path=str(_screenshot(screenshots, page)), full_page=True)
    report.images = tab.evaluate("() => document.images.length")
    tab.close()
    report.problems += inspect_on_phone(browser, base, page, screenshots)
    return report


def _screenshot(folder: Path, page: str, suffix: str = "") -> Path:
    return folder / (page.removesuffix(".html").replace("/", "__") + suffix + ".png")


def inspect_on_phone(browser, base: str, page: str, screenshots: Path | None):
    """Open the page 390 px wide: no sideways scrolling, and both drawers open."""
    problems = []
    tab = browser.new_page(viewport=PHONE, has_touch=True)
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    tab.goto(base + page, wait_until="load")
    tab.evaluate(INSPECT)  # typeset the math and load the images, as a reader waits
    width = PHONE["width"]
    found = tab.evaluate(OVERFLOW)
    if found["overflow"] > 0:
        problems.append(
            f"at {width} px the page scrolls sideways by {found['overflow']} px: "
            + "; ".join(found["culprits"] or ["(no single element found)"])
        )
    if screenshots is not None:
        tab.screenshot(path=str(_screenshot(screenshots, page, "@390")), full_page=True)
    for name, (button, panel) in DRAWERS.items():
        if name == "contents" and not tab.locator(f"{panel} a[href]").count():
            continue  # a page without sections has no contents to show
        problems += _open_drawer(tab, name, button, panel, width)
    problems += [
        f"at {width} px, JavaScript error: {m}" for m in errors if not harmless(m)
    ]
    tab.close()
    return problems


def _open_drawer(tab, name: str, button: str, panel: str, width: int) -> list[str]:
    """Click the drawer's button as a reader would; its links must come on screen."""
    buttons = [b for b in tab.locator(button).all() if b.is_visible()]
    if not buttons:
        return [f"at {width} px there is no visible {name} button ({button})"]
    if tab.evaluate(SHOWN_LINKS, panel):
        return [f"at {width} px the {name} is open before its button is clicked"]
    buttons[0].click()
    tab.wait_for_timeout(400)  # the drawer slides in
    shown = tab.evaluate(SHOWN_LINKS, panel)
    tab.keyboard.press("Escape")  # close it again, as the back gesture would
    tab.wait_for_timeout(200)
    if not shown:
        return [f"at {width} px the {name} button ({button}) does not open the {name}"]
    return []


def dead_links(root: Path, reports: dict[str, PageReport]) -> list[str]:
    """Links to a file of the build, or to an anchor in a page, that lead nowhere."""
    problems = []
    for page, report in reports.items():
        for href in report.links:
            parsed = urlparse(href)
            if parsed.scheme or parsed.netloc or href.startswith(("mailto:", "#!")):
                continue  # external: not checked offline
            target, fragment = urldefrag(href)
            if target:
                resolved = (root / page).parent / unquote(target)
                resolved = Path(*_normalize(resolved.relative_to(root).parts))
                if (root / resolved).is_dir():
                    resolved = resolved / "index.html"
                if not (root / resolved).exists():
                    problems.append(f"{page}: dead link {href}")
                    continue
                target_page = resolved.as_posix()
            else:
                target_page = page
            if fragment and target_page in reports:
                if unquote(fragment) not in reports[target_page].ids:
                    problems.append(f"{page}: dead anchor {href}")
    return problems


def _normalize(parts):
    out = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in ("", "."):
            out.append(part)
    return out


def _student():
    """tools/student.py, which reads the chapters' solutions."""
    spec = importlib.util.spec_from_file_location(
        "student", Path(__file__).with_name("student.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("student", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _sources_text(path: Path) -> str:
    """A download's text: a notebook's cells (JSON escapes undone), or the file."""
    text = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        cells = json.loads(text).get("cells", [])
        text = "\n".join("".join(cell.get("source", "")) for cell in cells)
    return text


def solution_leaks(
    root: Path, chapters: Path, reports: dict[str, PageReport]
) -> list[str]:
    """A solution's code or text on its chapter's page, in the chapter's downloads
    (``_sources/``) or, for its words, in the search index."""
    student = _student()
    problems = []
    index = _search_index(root)
    for path in student.chapters(chapters):
        docname = path.relative_to(chapters.parent).with_suffix("").as_posix()
        lines = student.solution_lines(path)
        phrases = student.solution_phrases(path)
        page = reports.get(f"{docname}.html")
        page_text = student.normalized(page.text) if page else ""
        for label in lines:
            for line in lines[label]:
                if student.normalized(line) in page_text:
                    problems.append(
                        f"{docname}.html: solution of {label} shown: {line!r}"
                    )
                    break
            for phrase in phrases[label]:
                if phrase in page_text:
                    problems.append(
                        f"{docname}.html: solution of {label} shown: {phrase!r}"
                    )
                    break
        for download in sorted((root / "_sources").glob(f"{docname}.*")):
            text = _sources_text(download)
            name = download.relative_to(root).as_posix()
            for label in lines:
                leaked = [line for line in lines[label] if line in text]
                if leaked:
                    problems.append(f"{name}: solution of {label}: {leaked[0]!r}")
        problems += _index_leaks(index, docname, phrases, page_text)
    return problems


def _search_index(root: Path) -> dict:
    path = root / "searchindex.js"
    if not path.exists():
        return {}
    text = path.read_text()
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def _index_leaks(index: dict, docname: str, phrases: dict, page_text: str) -> list[str]:
    """Words that only a solution of the chapter has (not its other text, not what its
    page shows), found under the chapter's page in the search index."""
    if not index or docname not in index.get("docnames", []):
        return []
    from sphinx.search.en import SearchEnglish

    stem = SearchEnglish({}).stem
    number = index["docnames"].index(docname)
    shown = {stem(word) for word in re.findall(r"\w+", page_text)}
    problems = []
    for label, found in phrases.items():
        words = {w for phrase in found for w in re.findall(r"[a-z]{6,}", phrase)}
        for word in sorted(words):
            key = stem(word)
            if key in shown:
                continue
            docs = index["terms"].get(key, [])
            if number == docs or (isinstance(docs, list) and number in docs):
                problems.append(
                    f"searchindex.js: {docname} is indexed under {word!r}, a word of "
                    f"the solution of {label} that the page does not show"
                )
                break
    return problems


def check_site(
    root: Path,
    screenshots: Path | None = None,
    solutions: bool = True,
    chapters: Path | None = None,
) -> tuple[dict[str, PageReport], list[str]]:
    """Inspect every page of the build in ``root``; return the reports and problems."""
    from playwright.sync_api import sync_playwright

    root = Path(root)
    if not (root / "index.html").exists():
        raise SystemExit(f"check_site: {root} has no index.html; build the book first")
    if screenshots is not None:
        shutil.rmtree(screenshots, ignore_errors=True)
        screenshots.mkdir(parents=True)
    chromium = find_chromium()
    reports = {}
    with serve(root) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            for page in pages_of(root):
                reports[page] = inspect_page(browser, base, root, page, screenshots)
        finally:
            browser.close()
    problems = [f"{p}: {msg}" for p, r in reports.items() for msg in r.problems]
    problems += dead_links(root, reports)
    if not solutions:
        problems += [
            f"{p}: {r.solutions} solution(s) shown in a build without solutions"
            for p, r in reports.items()
            if r.solutions
        ]
        problems += solution_leaks(root, Path(chapters or "book").resolve(), reports)
    return reports, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the HTML build, e.g. _build/html")
    parser.add_argument("--screenshots", type=Path, help="folder for the screenshots")
    parser.add_argument(
        "--no-solutions", action="store_true", help="fail if any solution is shown"
    )
    parser.add_argument(
        "--chapters",
        type=Path,
        default=Path("book"),
        help="the chapters whose solutions --no-solutions looks for (default: book)",
    )
    args = parser.parse_args(argv)
    if browser_skipped():
        print(f"check_site: SKIPPED ({NO_BROWSER} is set): {args.html} was not checked")
        return 0
    reports, problems = check_site(
        args.html, args.screenshots, not args.no_solutions, args.chapters
    )
    for page, report in reports.items():
        print(
            f"{page:34s} math {report.math:5d}  images {report.images:3d}  "
            f"solutions {report.solutions:2d}  problems {len(report.problems)}"
        )
    for problem in problems:
        print("PROBLEM", problem)
    print(f"{len(reports)} pages, {len(problems)} problems")
    if args.screenshots:
        print(f"screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
