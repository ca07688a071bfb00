"""The committed notebooks are the one source of the book (book/architecture.md, "Authoring
notebooks"): plain .ipynb without outputs, one parameters cell, the Colab install cell kept
out of the rendered page, every notebook in the table of contents, and nothing in tools/
that writes notebooks."""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_colab_install_cell_is_removed_from_the_page(path):
    colab = [c for c in _cells(path) if "google.colab" in _source(c)]
    assert len(colab) == 1, f"{path.name}: {len(colab)} cells mention google.colab, expected the one install cell"
    assert "remove-cell" in _tags(colab[0]), f"{path.name}: the Colab install cell lacks the tag remove-cell"


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
    from xcf.companion import costs as plan
    from xcf.companion.profiles import profile_knobs

    cells = _cells(path)
    note = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
            and _source(c).startswith("```{admonition} GPU time")]
    assert note and note[0] <= 2, f"{path.name}: no GPU-time admonition near the top"
    text = _source(cells[note[0]])
    assert "estimate" in text
    planned = plan.plan_runs(plan.notebook_runs(
        path.stem, profile_knobs(path.stem, "gpu", ROOT / "notebooks" / "params")))
    hours = plan.duration(plan.gpu_hours(sum(r.flops for r in planned), "T4") * 3600)
    row = next(line for line in text.splitlines() if line.startswith("| `gpu`"))
    assert f"| {len(planned)} |" in row and f"| {hours} |" in row, (row, hours)
    setup = next(i for i, c in enumerate(cells) if "notebook_parameters(" in _source(c)
                 and "import" in _source(c))
    assert f'print_plan("{path.stem}", P)' in _source(cells[setup]), path.name
    first_figure = next(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                        and re.search(r"figures\.|fit\(", _source(c)) and i != setup)
    assert setup < first_figure
