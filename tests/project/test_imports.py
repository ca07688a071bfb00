"""The structure of the library: an import graph without cycles, modules that import on
their own, one import path per public name, and the dependency diagram of the
architecture page equal to the graph parsed here."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "xcf"
ENTRY_POINTS = {"xcf.__main__"}  # runs the CLI when imported


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def resolve(importer: str, node: ast.ImportFrom | ast.Import) -> set[str]:
    """The xcf modules an import statement of ``importer`` loads (top-level or not)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    if node.level:
        base = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target not in MODULES:
        return set()
    found = set()
    for alias in node.names:  # `from . import atomic` names a module; `from .x import f` not
        sub = f"{target}.{alias.name}"
        found.add(sub if sub in MODULES else target)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the xcf modules it imports anywhere in its body (functions included)."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= resolve(name, node)
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def diagram(graph: dict[str, set[str]]) -> str:
    width = max(map(len, graph))
    lines = []
    for name in sorted(graph):
        deps = ", ".join(sorted(graph[name]))
        lines.append(f"{name:<{width}} -> {deps}" if deps else name)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the checks

def test_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_modules():
    tree = ast.parse("from . import atomic\nfrom .data.dataset import Dataset\nfrom .. import atomic\n"
                     "from ..data import dataset")
    a, b, c, d = tree.body
    assert resolve("xcf.inputs", a) == {"xcf.atomic"}
    assert resolve("xcf.inputs", b) == {"xcf.data.dataset"}
    assert resolve("xcf.data.tiny_imagenet", c) == {"xcf.atomic"}
    assert resolve("xcf.runs.folder", d) == {"xcf.data.dataset"}


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def fresh_import_failures(names: list[str]) -> dict[str, str]:
    """module -> traceback, for each of ``names`` that fails to import in an interpreter of
    its own: each is forked from a parent that has loaded only third-party libraries (so
    the check is fast), never an xcf module."""
    script = f"""
import json, os, sys, traceback
import numpy, torch, torchvision, yaml, sympy, matplotlib
names = {names!r}
failed = {{}}
for name in names:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            assert not [m for m in sys.modules if m == "xcf" or m.startswith("xcf.")]
            __import__(name)
            msg = b""
        except BaseException:
            msg = traceback.format_exc().encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    if out:
        failed[name] = out.decode()
print(json.dumps(failed))
"""
    env = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    failed = fresh_import_failures(sorted(set(MODULES) - ENTRY_POINTS))
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())


def test_a_module_that_fails_to_import_is_reported():
    failed = fresh_import_failures(["xcf.atomic", "xcf.no_such_module"])
    assert list(failed) == ["xcf.no_such_module"] and "ModuleNotFoundError" in failed["xcf.no_such_module"]


def defined_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def private_imports(name: str, tree: ast.Module) -> set[str]:
    """Names a package imports from its own private modules (``from ._solutions import f``):
    their one public path is the package."""
    out = set()
    if not is_package(name):
        return out
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and (node.module or "").startswith("_"):
            out |= {alias.asname or alias.name for alias in node.names}
    return out


def declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


PUBLIC = sorted(n for n in MODULES if n not in ENTRY_POINTS
                and not any(part.startswith("_") for part in n.split(".")))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_module_declares_all_and_defines_each_name_in_it(name):
    tree = ast.parse(MODULES[name].read_text())
    names = declared_all(tree)
    assert names is not None, f"{name} has no __all__"
    assert len(names) == len(set(names)), f"{name}.__all__ lists a name twice"
    foreign = set(names) - defined_names(tree) - private_imports(name, tree) - {"__version__"}
    if name == "xcf":  # the face re-exports a few names, each checked below
        foreign -= set(face_homes())
    assert not foreign, (f"{name}.__all__ lists names defined elsewhere (a second import "
                         f"path): {sorted(foreign)}")


def face_homes() -> dict[str, str]:
    """The face's names and their defining modules, read from ``xcf/__init__.py``'s FACE."""
    tree = ast.parse(MODULES["xcf"].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FACE"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("xcf/__init__.py defines no FACE")


def test_the_face_is_a_few_names_each_the_object_of_its_one_home():
    import importlib

    import xcf

    homes = face_homes()
    assert sorted(homes) == sorted(["measure", "cas", "PGD", "load", "as_feature_classifier"])
    assert sorted(xcf.__all__) == sorted(["__version__", *homes])
    for name, home in homes.items():
        module = importlib.import_module(home)
        assert getattr(xcf, name) is getattr(module, name), (name, home)
        assert name in module.__all__, f"{home}.__all__ lacks {name}"


def test_a_name_imported_from_elsewhere_is_caught():
    tree = ast.parse("from .runs import Run\ndef f(): pass\n__all__ = ['Run', 'f']")
    assert set(declared_all(tree)) - defined_names(tree) == {"Run"}


# The layers, lowest first: a module imports from its own layer or lower ones only.  The
# face (the library a user imports) is the bottom; the command line the top.
LAYERS = (("xcf", "xcf.atomic", "xcf.inputs", "xcf.attacks", "xcf.attribution", "xcf.models",
           "xcf.plots", "xcf.data", "xcf.theory"),
          ("xcf.runs",), ("xcf.train",), ("xcf.companion",), ("xcf.cli", "xcf.__main__"))


def layer_of(module: str) -> int:
    """The layer of ``module``: that of the longest prefix listed in :data:`LAYERS`."""
    best, found = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), i
    assert found is not None, f"{module} is in no layer; add its subpackage to LAYERS"
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                  if layer_of(d) > layer_of(m))


def test_the_layer_check_finds_an_upward_import():
    assert upward_imports({"xcf.runs.folder": {"xcf.train.runner", "xcf.atomic"},
                           "xcf.train.runner": {"xcf.runs.folder"}}) == [
        "xcf.runs.folder -> xcf.train.runner"]
    assert layer_of("xcf.data.planted") == 0 and layer_of("xcf.cli.main") == 4


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_the_top_level_holds_only_the_face_and_subpackages():
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
           if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    face = {"__init__", "__main__", "atomic", "inputs", "attacks", "attribution", "models",
            "plots", "data", "theory"}
    assert top - face == {"runs", "train", "companion", "cli"}, sorted(top - face)


def test_no_library_file_is_over_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def page_diagram() -> str:
    text = (ROOT / "book" / "architecture.md").read_text()
    match = re.search(r"## Module dependencies\n.*?```text\n(.*?)```", text, re.S)
    assert match, "book/architecture.md lacks a 'Module dependencies' section with a text block"
    return match.group(1).rstrip("\n")


def test_the_architecture_page_shows_the_parsed_import_graph():
    expected = diagram(import_graph())
    assert page_diagram() == expected, ("the diagram on book/architecture.md is out of date; "
                                        "replace its text block with:\n" + expected)


if __name__ == "__main__":  # print the diagram, to paste into book/architecture.md
    print(diagram(import_graph()))
