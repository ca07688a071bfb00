"""The committed notebooks follow the book's layout: one Colab cell, the same in every
notebook and removed from the page; a parameters cell; every other code cell collapsed;
no code line wider than the page; and no dataset named in a section's code, whose
labels come from the runs' configs."""
import ast
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
SECTIONS = [p for p in NOTEBOOKS if re.match(r"(0[3-9]|1[01])_", p.name)]
DATASETS = ("fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "mnist")


def code_cells(path):
    return [c for c in nbformat.read(path, 4).cells if c.cell_type == "code"]


def tags(cell):
    return set(cell.metadata.get("tags", []))


def test_every_notebook_has_one_identical_colab_cell_removed_from_the_page():
    """Identical but for the extras a notebook installs (``EXTRAS = "[saliency]"``)."""
    colab = []
    for path in NOTEBOOKS:
        cells = [c for c in code_cells(path) if "google.colab" in c.source]
        assert len(cells) == 1, path.name
        assert tags(cells[0]) == {"remove-cell"}, path.name
        colab.append(re.sub(r'EXTRAS = "[^"]*"', 'EXTRAS = ""', cells[0].source))
    assert len(set(colab)) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_tagged_and_fit_the_page(path):
    cells = code_cells(path)
    assert sum("parameters" in tags(c) for c in cells) == 1
    for c in cells:
        assert tags(c) & {"parameters", "remove-cell", "hide-input"}, c.id
        ast.parse(c.source)  # plain Python: no magics, nothing a kernel must rescue
        for line in c.source.splitlines():
            assert len(line) <= 88, (c.id, line)


@pytest.mark.parametrize("path", SECTIONS, ids=lambda p: p.stem)
def test_sections_name_no_dataset_and_lead_with_the_committed_results(path):
    cells = code_cells(path)
    for c in cells:
        for name in DATASETS:
            assert f'"{name}"' not in c.source, (c.id, name)
    calls = [c.source for c in cells if "figures." in c.source and "import" not in c.source]
    if path.stem.startswith(("10_", "11_")):
        return  # these pages read results only; they train nothing live
    live = [i for i, s in enumerate(calls) if "(live," in s]
    assert live and live[0] > 0, path.name
    assert all("(committed," in s for s in calls[:live[0]]), path.name


# --- what the rendered page shows ------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _build_book():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "tools"))  # build_book imports its sibling bookcheck
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_executed_copy_hides_both_parameters_cells(path, tmp_path):
    """papermill injects a cell tagged injected-parameters after the notebook's own
    parameters cell; the copy the book renders tags both remove-cell, and nothing else."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    build_book = _build_book()
    nb = parameterize_notebook(load_notebook_node(str(path)), {"profile": "cpu"})
    out = tmp_path / path.name
    nbformat.write(nb, out)
    assert build_book.hide_parameters(out) == 2
    before, after = nb.cells, nbformat.read(out, 4).cells
    assert len(before) == len(after)
    for old, new in zip(before, after):
        if tags(old) & {"parameters", "injected-parameters"}:
            assert tags(new) == tags(old) | {"remove-cell"}, new.get("id")
        else:
            assert tags(new) == tags(old) and new.source == old.source, new.get("id")
    committed = [c for c in nbformat.read(path, 4).cells if "parameters" in tags(c)]
    assert [tags(c) for c in committed] == [{"parameters"}]  # Colab and papermill need it


def test_hiding_parameters_never_edits_a_committed_notebook():
    with pytest.raises(ValueError, match="committed notebook"):
        _build_book().hide_parameters(NOTEBOOKS[0])


def test_the_claims_figures_are_one_short_cell_after_the_verdicts():
    cells = nbformat.read(ROOT / "notebooks" / "11_claims.ipynb", 4).cells
    (i,) = [k for k, c in enumerate(cells) if "claim-figures" in tags(c)]
    source = cells[i].source
    assert len(source.splitlines()) <= 10 and source.count("draw_claims(") == 1
    verdicts = max(k for k, c in enumerate(cells[:i]) if "decide(" in c.source)
    assert all(c.cell_type == "markdown" for c in cells[verdicts + 1:i])


def test_the_verdict_table_columns_are_those_the_css_lays_out():
    """book/_static/xcf.css places the Claims page's verdict columns by position, so the
    verdict table's columns (claims_page.VERDICT_COLUMNS) must stay in the order the CSS names them."""
    from xcf.companion.claims_page import VERDICT_COLUMNS

    css = (ROOT / "book" / "_static" / "xcf.css").read_text()
    areas = dict(re.findall(r"td:nth-child\((\d)\) \{ grid-area: (\w+);", css))
    assert [areas[str(k)] for k in range(1, len(areas) + 1)] == list(VERDICT_COLUMNS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_stay_thin(path):
    """Notebooks are glue: at most 80 non-blank code lines (the Colab cell included), so
    code that is more than glue lives in xcf with a test.  The theory notebook, which
    derives Section 4 step by step in sympy, is the one exception."""
    import json

    cells = json.loads(path.read_text())["cells"]
    n = sum(len([line for line in "".join(c["source"]).splitlines() if line.strip()])
            for c in cells if c["cell_type"] == "code")
    assert path.stem == "01_theory_synthetic_model" or n <= 80, f"{path.name}: {n} code lines"
