"""Execute the notebooks at a profile with papermill, then build the Jupyter Book.

    .venv/bin/python tools/build_book.py --profile smoke       # all notebooks of _toc.yml, then the HTML
    .venv/bin/python tools/build_book.py --only 02 --no-build  # one notebook, no HTML
    .venv/bin/python tools/build_book.py --html-only           # the HTML of what ran before

After the build, every page is opened in headless Chromium (``tools/bookcheck.py``).

Notebooks are committed without outputs.  Executed copies go to ``_build/src/notebooks``
together with the book's pages and configuration, and ``jupyter-book build`` renders that
tree (with ``execute_notebooks: off``) into ``_build/html``, warnings as errors.  A page
shows no parameters cell: the executed copy's ``parameters`` cell and the one papermill
injects are tagged ``remove-cell`` there (:func:`hide_parameters`); the committed notebook
keeps its ``parameters`` tag alone, so Colab and papermill run it as before.

``--html-only`` renders the executed copies a previous ``--no-build`` left in
``_build/src`` without running anything; a notebook of ``_toc.yml`` that has none there is
copied as committed, its page without outputs (a layout preview, not a book to publish).

This script knows the checkout's layout (``_toc.yml``, ``book/``, ``notebooks/``), which is
why it lives in ``tools/`` and not in the installable library.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from xcf.companion.profiles import PROFILES

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
if str(TOOLS) not in sys.path:  # bookcheck.py is a sibling script, not part of xcf
    sys.path.insert(0, str(TOOLS))

import bookcheck  # noqa: E402
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """Notebooks named in ``_toc.yml``, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").is_file()]


# What a notebook's recorded metrics depend on, besides the notebook itself: the library,
# the profiles, and the benchmarks (the Performance page runs them).
SOURCE_TREES = ("xcf", "notebooks/params", "benchmarks")


def source_fingerprint(notebook: Path, root: Path = ROOT) -> str:
    """A digest of ``notebook`` and of every file it runs (:data:`SOURCE_TREES`): the
    metrics a build recorded for it are current exactly while this digest is unchanged.
    ``make test`` after ``make book`` reuses them on that condition (tests/notebooks/test_notebooks.py)."""
    h = hashlib.sha256()
    files = [notebook] + sorted(f for tree in SOURCE_TREES for f in (root / tree).rglob("*")
                                if f.is_file() and f.suffix in (".py", ".yaml", ".yml")
                                and "__pycache__" not in f.parts)
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint_path(runs: Path, notebook: Path) -> Path:
    """Where the build records :func:`source_fingerprint` beside a notebook's metrics."""
    return runs / "metrics" / f"{notebook.stem}.source"


def kernel_env(build: Path) -> dict:
    """Environment for the notebook kernels: headless plotting, no progress bars, this
    interpreter's ``bin`` first on PATH (so kernel ``python3`` is the one with xcf), and
    this checkout first on PYTHONPATH, so that the kernels import its ``xcf`` even where
    the interpreter has another checkout installed (git worktrees sharing one venv).

    The inline backend is headless too, and unlike ``agg`` it embeds each figure in the
    executed notebook, which is where the book takes its figures from."""
    env = {
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "TQDM_DISABLE": "1",
        "XCF_RUNS_DIR": str(build / "runs"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                      if p),
    }
    return env


# The cells that set a notebook's parameters: its own (the tag papermill looks for) and
# the one papermill inserts after it with the values of this build.  A reader of the page
# needs neither: the page prints its profile where it prints results.
PARAMETER_TAGS = ("parameters", "injected-parameters")
HIDDEN = "remove-cell"  # myst-nb leaves a cell with this tag out of the page


def hide_parameters(notebook: Path) -> int:
    """Tag the parameters cells of an executed copy (:data:`PARAMETER_TAGS`) ``remove-cell``,
    in place; returns how many cells are tagged.  Only copies under ``_build`` are edited:
    the committed notebook keeps ``parameters`` alone, which Colab and papermill need."""
    if (ROOT / "notebooks") in Path(notebook).resolve().parents:
        raise ValueError(f"{notebook} is a committed notebook; hide parameters in a copy")
    text = notebook.read_text(encoding="utf-8")
    nb = json.loads(text)
    hidden = 0
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).get("tags", [])
        if set(tags) & set(PARAMETER_TAGS):
            if HIDDEN not in tags:
                cell["metadata"]["tags"] = [*tags, HIDDEN]
            hidden += 1
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        notebook.write_text(new, encoding="utf-8")
    return hidden


def execute(notebook: Path, out: Path, profile: str, cwd: Path) -> float:
    """Run one notebook with papermill into ``out``, its parameters cells hidden from the
    page (:func:`hide_parameters`); returns wall seconds."""
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    pm.execute_notebook(str(notebook), str(out), parameters={"profile": profile},
                        kernel_name="python3", cwd=str(cwd), progress_bar=False,
                        log_output=False)
    hide_parameters(out)
    return time.time() - start


def unexecuted(build: Path, root: Path = ROOT) -> list[Path]:
    """For ``--html-only``: copy every notebook of ``_toc.yml`` that has no executed copy
    under ``build/src`` there as committed (parameters hidden); returns those copied."""
    copied = []
    for nb in toc_notebooks(root):
        out = build / "src" / nb.relative_to(root)
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb, out)
            copied.append(nb)
        hide_parameters(out)  # a copy executed before the tag was added, too
    return copied


def assemble(build: Path, root: Path = ROOT) -> Path:
    """Copy pages and configuration beside the executed notebooks; returns the source dir."""
    src = build / "src"
    for name in BOOK_FILES:
        shutil.copy2(root / name, src / name)
    for d in BOOK_DIRS:
        shutil.copytree(root / d, src / d, dirs_exist_ok=True)
    return src


def build_html(src: Path, root: Path = ROOT) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the HTML folder."""
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src),
           "--path-output", str(root), "-W", "--keep-going"]
    subprocess.run(cmd, check=True)
    return root / "_build" / "html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/build_book.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--only", action="append", default=[],
                    help="run only notebooks whose name starts with this (repeatable)")
    ap.add_argument("--no-build", action="store_true", help="execute notebooks only")
    ap.add_argument("--html-only", action="store_true",
                    help="execute nothing: build the HTML from the copies a previous run "
                         "executed under _build/src (a notebook without one is copied "
                         "unexecuted, its page without outputs)")
    args = ap.parse_args(argv)
    if args.html_only and (args.no_build or args.only):
        ap.error("--html-only builds what ran before; it takes neither --only nor --no-build")

    build = ROOT / "_build"
    notebooks = toc_notebooks()
    if args.only:
        notebooks = [n for n in notebooks if any(n.stem.startswith(p) for p in args.only)]
        if not notebooks:
            ap.error(f"no notebook of _toc.yml starts with {args.only}")
    if args.html_only:
        for nb in unexecuted(build):
            print(f"[build_book] {nb.relative_to(ROOT)} has no executed copy: its page "
                  "shows no outputs", flush=True)
        notebooks = []
    os.environ.update(kernel_env(build))
    for nb in notebooks:
        out = build / "src" / nb.relative_to(ROOT)
        print(f"[build_book] executing {nb.relative_to(ROOT)} at profile {args.profile} ...", flush=True)
        stamp = fingerprint_path(build / "runs", nb)
        stamp.unlink(missing_ok=True)  # a failed run leaves no claim of current metrics
        digest = source_fingerprint(nb)  # before: an edit during the run makes it stale
        secs = execute(nb, out, args.profile, cwd=nb.parent)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{args.profile} {digest}\n")
        print(f"[build_book]   done in {secs:.0f} s -> {out.relative_to(ROOT)}", flush=True)
    if args.no_build:
        return 0
    html = build_html(assemble(build))
    print(f"[build_book] book written to {html.relative_to(ROOT)}/index.html")
    return browser_check(html)


def browser_check(html: Path) -> int:
    """Open every page in headless Chromium (tools/bookcheck.py).  Without Chromium the
    check is skipped with a note, except in CI (``CI`` set), where it must run."""
    if bookcheck.find_chromium() is None:
        if os.environ.get("CI"):
            print("[build_book] Chromium is required in CI for the browser check", file=sys.stderr)
            return 1
        print("[build_book] note: Chromium not found, browser check skipped "
              "(apt-get install chromium)", file=sys.stderr)
        return 0
    return bookcheck.main([str(html)])


if __name__ == "__main__":
    sys.exit(main())
