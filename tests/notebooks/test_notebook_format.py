"""The committed notebooks are the one source of the book (book/architecture.md, "Authoring
notebooks"), and follow the book's layout: plain .ipynb without outputs; one parameters
cell; one Colab cell, the same in every notebook and removed from the page; every other
code cell collapsed; no code line wider than the page; no dataset named in a section's
code, whose labels come from the runs' configs; every notebook in the table of contents;
nothing in tools/ that writes notebooks; and at most 80 code lines of glue."""
import ast
import json
import re
from pathlib import Path

import pytest
import yaml

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SECTIONS = [p for p in NOTEBOOKS if re.match(r"(0[3-9]|1[01])_", p.name)]
DATASETS = ("fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "mnist")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 12, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_or_execution_counts(path):
    dirty = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_that_sets_the_profile(path):
    tagged = [c for c in _cells(path) if "parameters" in _tags(c)]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    (cell,) = tagged
    assert cell["cell_type"] == "code"
    assert re.search(r"^profile\s*=", _source(cell), re.M), "papermill's -p profile needs `profile = ...`"


def test_every_notebook_is_in_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = set(re.findall(r"'file': '([^']+)'", str(toc)))
    missing = [p.name for p in NOTEBOOKS if f"notebooks/{p.stem}" not in files]
    assert not missing, f"notebooks missing from _toc.yml: {missing}"


def test_no_tool_writes_notebooks():
    """Notebooks are edited in Jupyter, not generated: a generator's output would overwrite
    an edit made there.  (tools/build_book.py writes executed copies under _build/ through
    papermill; it never builds a notebook from code.)"""
    writers = [p.name for p in (ROOT / "tools").rglob("*.py")
               if re.search(r"\bnbformat\b|new_notebook|new_code_cell|new_markdown_cell", p.read_text())]
    assert not writers, f"tools that build notebooks: {writers}"


TRAINING = [p for p in NOTEBOOKS if re.match(r"0[2-9]_", p.name)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_opens_the_notebook_on_a_gpu_runtime(path):
    meta = json.loads(path.read_text())["metadata"]
    assert meta.get("accelerator") == "GPU", path.name
    assert meta.get("colab", {}).get("gpuType"), path.name


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_a_training_notebook_opens_with_its_gpu_time_and_prints_its_plan(path):
    """The admonition's gpu row is the plan of the gpu profile (xcf.companion.costs), labelled an
    estimate; the setup cell prints the plan before any figure trains a run."""
    from xcf.companion import costs
    from xcf.companion.profiles import profile_knobs

    cells = _cells(path)
    note = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
            and _source(c).startswith("```{admonition} GPU time")]
    assert note and note[0] <= 2, f"{path.name}: no GPU-time admonition near the top"
    text = _source(cells[note[0]])
    assert "estimate" in text
    planned = costs.plan_runs(costs.notebook_runs(
        path.stem, profile_knobs(path.stem, "gpu", ROOT / "notebooks" / "params")))
    hours = costs.duration(costs.gpu_hours(sum(r.flops for r in planned), "T4") * 3600)
    row = next(line for line in text.splitlines() if line.startswith("| `gpu`"))
    assert f"| {len(planned)} |" in row and f"| {hours} |" in row, (row, hours)
    setup = next(i for i, c in enumerate(cells) if "notebook_parameters(" in _source(c)
                 and "import" in _source(c))
    assert f'print_plan("{path.stem}", P)' in _source(cells[setup]), path.name
    first_figure = next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                        and re.search(r"figures\.|fit\(", _source(c)) and i != setup)
    assert setup < first_figure

# --- the book's layout -----------------------------------------------------------------------


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
    cells = json.loads(path.read_text())["cells"]
    n = sum(len([line for line in "".join(c["source"]).splitlines() if line.strip()])
            for c in cells if c["cell_type"] == "code")
    assert path.stem == "01_theory_synthetic_model" or n <= 80, f"{path.name}: {n} code lines"
