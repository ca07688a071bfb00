"""The book's equation -> code page names functions that exist."""
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
