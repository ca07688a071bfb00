"""Execute the notebooks at a profile with papermill, then build the Jupyter Book.

    .venv/bin/python tools/build_book.py --profile smoke       # all notebooks of _toc.yml, then the HTML
    .venv/bin/python tools/build_book.py --only 02 --no-build  # one notebook, no HTML

After the build, every page is opened in headless Chromium (``tools/bookcheck.py``).

Notebooks are committed without outputs.  Executed copies go to ``_build/src/notebooks``
together with the book's pages and configuration, and ``jupyter-book build`` renders that
tree (with ``execute_notebooks: off``) into ``_build/html``, warnings as errors.

This script knows the checkout's layout (``_toc.yml``, ``book/``, ``notebooks/``), which is
why it lives in ``tools/`` and not in the installable library.
"""
from __future__ import annotations

import argparse
import hashlib
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
    ``make test`` after ``make book`` reuses them on that condition (tests/test_notebooks.py)."""
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
    interpreter's ``bin`` first on PATH (so kernel ``python3`` is the one with xcf).

    The inline backend is headless too, and unlike ``agg`` it embeds each figure in the
    executed notebook, which is where the book takes its figures from."""
    env = {
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "TQDM_DISABLE": "1",
        "XCF_RUNS_DIR": str(build / "runs"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return env


def execute(notebook: Path, out: Path, profile: str, cwd: Path) -> float:
    """Run one notebook with papermill; returns wall seconds."""
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    pm.execute_notebook(str(notebook), str(out), parameters={"profile": profile},
                        kernel_name="python3", cwd=str(cwd), progress_bar=False,
                        log_output=False)
    return time.time() - start


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
    args = ap.parse_args(argv)

    build = ROOT / "_build"
    notebooks = toc_notebooks()
    if args.only:
        notebooks = [n for n in notebooks if any(n.stem.startswith(p) for p in args.only)]
        if not notebooks:
            ap.error(f"no notebook of _toc.yml starts with {args.only}")
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
