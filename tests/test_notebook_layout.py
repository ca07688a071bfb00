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
