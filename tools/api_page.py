"""Write book/api.md from the package itself: one section per layer of ``xcf`` (the face,
then each subpackage in import order), headed by the first paragraph of its ``__init__``
docstring, and one ``automodule`` per public module.  The API page is the one module list
of the project; the README and the architecture page point to it.

    python tools/api_page.py            # rewrite book/api.md
    python tools/api_page.py --check    # exit 1 if book/api.md is out of date
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xcf"
PAGE = ROOT / "book" / "api.md"

# (title, modules or subpackage) in the order of the layers, lowest first.
SECTIONS = [
    ("The face", ["xcf", "xcf.attacks", "xcf.attribution", "xcf.models", "xcf.inputs",
                  "xcf.atomic", "xcf.plots"]),
    ("Data", "xcf.data"),
    ("Theory (Section 4)", "xcf.theory"),
    ("Run folders", "xcf.runs"),
    ("Training", "xcf.train"),
    ("The companion", "xcf.companion"),
    ("Command line", "xcf.cli"),
]

HEADER = """# API reference

Every public module of `xcf`, by layer, generated from its docstrings when the book is built
(`sphinx.ext.autodoc`, offline). A module lists the names in its `__all__`, each of them
at its one import path; `import xcf` gives five of them (`xcf.measure`, `xcf.cas`, `xcf.PGD`,
`xcf.load`, `xcf.as_feature_classifier`). A module imports only from its own layer or the
ones above it on this page (tests/project/test_imports.py). The [equations page](equations.md) maps
the paper's equations to these functions. This page is written by `tools/api_page.py`;
docstrings are reStructuredText (``eval-rst``), as autodoc expects.
"""


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def _path(module: str) -> Path:
    p = ROOT / module.replace(".", "/")
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


def _modules_of(package: str) -> list[str]:
    """The package, then its public modules (not ``_private``), sorted by name."""
    folder = ROOT / package.replace(".", "/")
    subs = sorted(p.stem for p in folder.glob("*.py")
                  if p.stem != "__init__" and not p.stem.startswith("_"))
    return [package, *(f"{package}.{s}" for s in subs)]


def page() -> str:
    parts = [HEADER]
    for title, what in SECTIONS:
        modules = what if isinstance(what, list) else _modules_of(what)
        intro = "" if isinstance(what, list) else _docstring(_path(what)).split("\n\n")[0]
        parts.append(f"## {title}\n")
        if intro:
            parts.append(" ".join(intro.split()) + "\n")
        for m in modules:
            # The face re-exports five names documented in their own modules: once only.
            options = "\n   :no-members:" if m == "xcf" else ""
            parts.append(f"### `{m}`\n\n```{{eval-rst}}\n.. automodule:: {m}{options}\n```\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a != "--check"]
    if unknown:
        print(f"tools/api_page.py: unknown argument(s) {unknown}; usage: python "
              "tools/api_page.py [--check]  (writes book/api.md, or checks it is current)",
              file=sys.stderr)
        return 2
    text = page()
    if "--check" in argv:
        if PAGE.read_text() != text:
            print("book/api.md is out of date: run python tools/api_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
