"""The book's equation -> code page names functions that exist."""
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Short prefixes the page's legend defines for the theory section.
PREFIXES = {"S": "xcf.theory.symbolic", "model": "xcf.theory.model", "gaussian": "xcf.theory.gaussian",
            "montecarlo": "xcf.theory.montecarlo", "plots": "xcf.theory.plots"}


def _resolve(dotted: str):
    head, _, rest = dotted.partition(".")
    if head in PREFIXES:
        dotted = f"{PREFIXES[head]}.{rest}"
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_function_on_the_equations_page_exists():
    text = (ROOT / "book" / "equations.md").read_text()
    names = set()
    for token in re.findall(r"`([^`]+)`", text):
        name = token.split("(")[0].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*\.[\w]+", name) and (name.startswith("xcf.") or name.split(".")[0] in PREFIXES):
            names.add(name)
    assert len(names) > 40
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"names on book/equations.md that do not exist: {missing}"


def _public_modules() -> set[str]:
    import pkgutil

    import xcf

    return {m.name for m in pkgutil.walk_packages(xcf.__path__, "xcf.")
            if not any(part.startswith("_") for part in m.name.split("."))}


def test_the_api_page_documents_every_public_module_and_only_those():
    text = (ROOT / "book" / "api.md").read_text()
    documented = re.findall(r"^\.\. automodule:: (\S+)\s*$", text, re.M)
    assert len(documented) == len(set(documented)), "a module is documented twice"
    public = _public_modules() | {"xcf"}  # the face too
    assert len(public) > 20
    assert set(documented) == public, (f"missing from book/api.md: {sorted(public - set(documented))}; "
                                      f"not public modules: {sorted(set(documented) - public)}")


def test_the_api_page_is_the_one_written_from_the_package():
    """The one module list of the project is generated, so it cannot drift from the code;
    the README and the architecture page point to it instead of listing modules."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "tools" / "api_page.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_api_page_is_in_the_table_of_contents():
    assert "file: book/api" in (ROOT / "_toc.yml").read_text()


def test_the_book_loads_the_css_that_wraps_long_code_lines():
    import yaml

    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    static = sphinx["config"]["html_static_path"]
    css = [ROOT / d / f for d in static for f in sphinx["config"]["html_css_files"]]
    assert static == ["book/_static"] and css and all(p.is_file() for p in css)
    text = "".join(p.read_text() for p in css)
    assert re.search(r"div\.cell_input pre[^{]*\{[^}]*white-space:\s*pre-wrap", text, re.S)
    assert re.search(r"div\.cell_output pre[^{]*\{[^}]*white-space:\s*pre-wrap", text, re.S)
    assert "sphinx.ext.autodoc" in sphinx["extra_extensions"]


def test_the_first_page_pastes_the_verdicts_the_claims_page_glues():
    """book/intro.md leads with the Claims page's verdict table, pasted (myst-nb glue)
    from the cell that decides them: the key and the page it names must both exist, and
    the section must come before the profile table."""
    import re

    root = Path(__file__).resolve().parents[2]
    intro = (root / "book" / "intro.md").read_text()
    match = re.search(r"```\{glue:any\} (\S+)\n:doc: (\S+)\n```", intro)
    assert match, "book/intro.md pastes no glued output"
    key, doc = match.groups()
    notebook = (root / "book" / doc).resolve()
    assert notebook.exists(), doc
    import json

    cells = json.loads(notebook.read_text())["cells"]
    assert any(f'glue("{key}"' in "".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert intro.index("What the evidence shows") < intro.index("| profile |")
