"""Check a built book the way a reader sees it: open every page in headless Chromium.

For each HTML page of ``_build/html`` that the table of contents produced, Chromium loads
the page (``--dump-dom``, so what is checked is the DOM after scripts ran) and the check
asserts that:

- the page loaded: the DOM has the page's article element;
- every ``<img>`` of the article points to a file that exists, is a decodable image and is
  not empty (width and height > 0);
- no cell output holds a Python traceback, an error or anything written to stderr;
- no Markdown table in a cell output was left unrendered (a row of pipes and dashes as text,
  which is what a renderer without tables makes of ``IPython.display.Markdown`` tables);
- no cell tagged ``remove-cell`` shows: the page has no Colab install cell (no
  ``google.colab`` text anywhere in the article);
- no parameters cell shows: no cell of the page carries the tag ``parameters`` or papermill's
  ``injected-parameters`` (myst-nb writes a cell's tags as ``tag_<name>`` classes;
  ``tools/build_book.py`` tags both ``remove-cell`` in the executed copies);
- no cell output prints a path of the build machine: the repository's absolute path,
  ``/root/`` or ``/tmp/`` (a reader's machine has none of them).

    .venv/bin/python tools/bookcheck.py _build/html

It also takes the screenshots a person would look at (headless Chromium, 1280 px wide)::

    .venv/bin/python tools/bookcheck.py --screenshot _build/html/notebooks/11_claims.html claims.png
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000"]
# A Markdown table's delimiter row, as text: |---|---| (Sphinx's smartquotes may have turned
# the dashes into em or en dashes).
UNRENDERED_TABLE = re.compile(r"\|\s*(?:-{3,}|[\u2014\u2013]+)\s*\|")
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "---------------------------------------------------------------------------")
# Text only a cell tagged remove-cell holds: the Colab install cell.
REMOVED_CELL_MARKERS = ("google.colab",)
# Classes myst-nb gives a cell tagged parameters or injected-parameters.
PARAMETER_CELL_CLASSES = ("tag_parameters", "tag_injected-parameters")
REPOSITORY = Path(__file__).resolve().parent.parent


def machine_paths() -> tuple[str, ...]:
    """Path prefixes of the build machine that no output may print."""
    return (str(REPOSITORY), "/root/", "/tmp/")


def _chromium_args(chromium: str, profile: str) -> list[str]:
    return [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_dom(page: Path, chromium: str, timeout: float = 60) -> str:
    """The page's DOM after loading in headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([*_chromium_args(chromium, profile),
                              "--dump-dom", page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0 or "<html" not in out.stdout:
        raise RuntimeError(f"Chromium could not load {page}: {out.stderr[-500:]}")
    return out.stdout


def screenshot(page: Path, out: Path, chromium: str | None = None,
               size: tuple[int, int] = (1280, 4000), timeout: float = 90) -> Path:
    """A PNG of ``page`` as headless Chromium draws it in a ``size`` window (width, height):
    what a reader sees of the top of the page, to check by eye that no install cell shows,
    no code line runs past the page and the committed cpu results come first."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found; install it with 'apt-get install chromium'")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([*_chromium_args(chromium, profile), "--hide-scrollbars",
                               f"--window-size={size[0]},{size[1]}", f"--screenshot={out}",
                               Path(page).resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise RuntimeError(f"Chromium took no screenshot of {page}: {done.stderr[-500:]}")
    return out


_VOID = ("img", "br", "hr", "meta", "link", "input")


class _PageParser(HTMLParser):
    """Collects article images, the text of cell outputs and the article's whole text."""

    def __init__(self) -> None:
        super().__init__()
        self.has_article = False
        self.images: list[str] = []
        self.error_outputs = 0
        self.parameter_cells = 0
        self._output_depth = 0
        self._article_depth = 0
        self._stack: list[tuple[bool, bool]] = []
        self.output_text: list[str] = []
        self.article_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        is_article = tag == "article" or "bd-article" in classes
        self.has_article |= is_article
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        is_output = "cell_output" in classes or "output" in classes
        # myst-nb marks an error as "output traceback" and stderr as "output stderr";
        # stderr in a published page is a warning the reader should not have to see.
        if "output" in classes and {"traceback", "stderr", "error"} & set(classes):
            self.error_outputs += 1
        if set(PARAMETER_CELL_CLASSES) & set(classes):
            self.parameter_cells += 1
        if tag in _VOID:
            return
        self._stack.append((is_output, is_article))
        self._output_depth += is_output
        self._article_depth += is_article

    def handle_endtag(self, tag):
        if tag in _VOID or not self._stack:
            return
        is_output, is_article = self._stack.pop()
        self._output_depth -= is_output
        self._article_depth -= is_article

    def handle_data(self, data):
        if self._output_depth > 0:
            self.output_text.append(data)
        if self._article_depth > 0:
            self.article_text.append(data)


@dataclass
class PageReport:
    page: str
    problems: list[str] = field(default_factory=list)
    images: int = 0


def check_page(page: Path, dom: str, forbidden_paths: tuple[str, ...] | None = None) -> PageReport:
    """Problems found in one page's DOM (empty list: the page is fine).

    ``forbidden_paths``: path prefixes no output may print (default :func:`machine_paths`).
    """
    p = _PageParser()
    p.feed(dom)
    report = PageReport(page=str(page), images=len(p.images))
    if not p.has_article:
        report.problems.append("no article element: the page did not render")
    for src in p.images:
        problem = _image_problem(page, src)
        if problem:
            report.problems.append(problem)
    text = "".join(p.output_text)
    if any(m in text for m in TRACEBACK_MARKERS):
        report.problems.append("a cell output holds a Python traceback")
    if p.error_outputs:
        report.problems.append(f"{p.error_outputs} error output(s)")
    if p.parameter_cells:
        report.problems.append(f"{p.parameter_cells} parameters cell(s) shown: tag them "
                               "remove-cell in the executed copy")
    if UNRENDERED_TABLE.search(text):
        report.problems.append("a cell output holds a Markdown table printed as text, not rendered")
    article = "".join(p.article_text)
    for marker in REMOVED_CELL_MARKERS:
        if marker in article:
            report.problems.append(f"the page shows {marker!r}: a cell tagged remove-cell is rendered")
    for prefix in (machine_paths() if forbidden_paths is None else forbidden_paths):
        if prefix in text:
            report.problems.append(f"a cell output prints a path of the build machine ({prefix})")
    return report


def _image_problem(page: Path, src: str) -> str | None:
    url = urlparse(src)
    if url.scheme in ("http", "https"):
        return None  # badges and launch icons from the theme, not figures
    if url.scheme == "data":
        return None if len(src) > 100 else f"empty inline image {src[:40]}"
    path = (page.parent / unquote(url.path)).resolve()
    if not path.is_file() or path.stat().st_size == 0:
        return f"image {src} is missing or empty"
    if path.suffix.lower() == ".svg":
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:  # a file that does not decode is as bad as a missing one
        return f"image {src} does not decode ({e})"
    return None if w > 0 and h > 0 else f"image {src} has size {w}x{h}"


def content_pages(html_dir: Path) -> list[Path]:
    """The book's own pages (not Sphinx's genindex/search pages)."""
    skip = {"genindex.html", "search.html", "index.html"}
    return sorted(p for p in html_dir.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def check_book(html_dir: Path, chromium: str | None = None) -> list[PageReport]:
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found; install it with 'apt-get install chromium'")
    pages = content_pages(html_dir)
    if not pages:
        raise RuntimeError(f"no pages in {html_dir}; build the book first (make book)")
    return [check_page(p, render_dom(p, chromium)) for p in pages]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/bookcheck.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    ap.add_argument("--screenshot", nargs=2, metavar=("PAGE", "OUT_PNG"), type=Path,
                    help="save a screenshot of one built page instead of checking the book")
    ap.add_argument("--window-size", default="1280,4000", metavar="W,H",
                    help="browser window for --screenshot (default 1280,4000)")
    args = ap.parse_args(argv)
    if args.screenshot:
        page, out = args.screenshot
        if not page.is_file():
            ap.error(f"--screenshot: page {page} does not exist; build the book first "
                     "(make book) and name a page under _build/html")
        try:
            w, h = (int(v) for v in args.window_size.split(","))
        except ValueError:
            ap.error(f"--window-size {args.window_size!r}: give W,H in pixels, e.g. 1280,4000")
        try:
            print(f"[bookcheck] screenshot of {page} -> {screenshot(page, out, size=(w, h))}")
        except RuntimeError as e:  # Chromium missing or failing: its own words, no traceback
            ap.exit(1, f"tools/bookcheck.py: error: {e}\n")
        return 0
    try:
        reports = check_book(args.html_dir)
    except RuntimeError as e:  # no built book, or no Chromium: one line, no traceback
        ap.error(str(e))
    bad = [r for r in reports if r.problems]
    for r in reports:
        status = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems)
        print(f"[bookcheck] {r.page}: {r.images} image(s), {status}")
    print(f"[bookcheck] {len(reports) - len(bad)} of {len(reports)} pages fine")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
