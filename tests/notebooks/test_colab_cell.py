"""The Colab cell works the first time and on a re-run (issue 16).

The cell of notebook 09 (the one with an extra) is run with a fake ``google.colab`` module
in a fresh virtual environment, against a local clone of this repository (``file://``, its
HEAD commit) in place of the GitHub URL, and ``/content/xcf`` moved into a temp folder.  In
the same process xcf must then import from the new environment (a non-editable install:
no restart), and the notebook's profiles must be found.  A second run, in the same
process, and a third, in a new one (a restarted runtime), must change nothing."""
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def colab_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    (cell,) = [c for c in cells if "google.colab" in "".join(c["source"])]
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_cell_fetches_the_repository_and_branch_of_config_yml(path):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    m = re.search(r'URL, REF, DEST = "([^"]+)", "([^"]+)", "([^"]+)"', colab_cell(path))
    assert m, f"{path.name}: no `URL, REF, DEST = ...` line in the Colab cell"
    assert (m.group(1), m.group(2)) == (repo["url"], repo["branch"]), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_cell_installs_only_the_extras_the_notebook_needs(path):
    extras = re.search(r'EXTRAS = "([^"]*)"', colab_cell(path)).group(1)
    code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                   if c["cell_type"] == "code")
    draws_saliency = ("fig3c_saliency", "fig11_saliency", "gallery.")  # the gallery: Fig. 3c
    needs = "[saliency]" if any(s in code for s in draws_saliency) else ""
    assert extras == needs, path.name
    assert "[book]" not in colab_cell(path) and "-e" not in colab_cell(path).split()


DRIVER = r"""
import json, os, sys, types
sys.modules["google"] = types.ModuleType("google")
sys.modules["google.colab"] = types.ModuleType("google.colab")
cell = open(sys.argv[1]).read()
snapshots = []
for _ in range(int(sys.argv[2])):
    exec(compile(cell, "colab-cell", "exec"), {"__name__": "__main__"})
    import xcf, xcf.companion.profiles
    snapshots.append(dict(xcf=xcf.__file__, cwd=os.getcwd(),
                          params=str(xcf.companion.profiles.params_dir())))
print(json.dumps(snapshots))
"""


def _state(dest: Path, site: Path) -> dict:
    """What a re-run must leave alone: the clone's commit and files, the installed files."""
    head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    files = {str(p.relative_to(site)): p.stat().st_mtime_ns for p in site.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    return {"head": head, "files": files,
            "clone": sorted(str(p.relative_to(dest)) for p in dest.rglob("*")
                            if ".git" not in p.parts and "__pycache__" not in p.parts)}


def test_the_cell_installs_xcf_into_this_kernel_and_a_rerun_changes_nothing(tmp_path):
    origin, dest = tmp_path / "origin", tmp_path / "content" / "xcf"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(origin)], check=True)
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["branch"]
    subprocess.run(["git", "-C", str(origin), "checkout", "-q", "-B", branch, "HEAD"], check=True,
                   capture_output=True)
    cell = colab_cell(ROOT / "notebooks" / "09_saliency.ipynb")
    url = re.search(r'URL, REF, DEST = "([^"]+)"', cell).group(1)
    cell = cell.replace(f'"{url}"', f'"file://{origin}"').replace('"/content/xcf"',
                                                                  f'"{dest}"')
    (tmp_path / "cell.py").write_text(cell)
    (tmp_path / "driver.py").write_text(DRIVER)

    # A fresh venv that borrows this environment's packages (torch, grad-cam, pip) through
    # a plain path line after its own site-packages: no index, no network, no .pth hooks
    # of .venv (its editable xcf is not seen).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "zz_borrow.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XCF_", "PIP_"))}
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               OMP_NUM_THREADS="1")

    def run(times: int) -> list[dict]:
        done = subprocess.run([str(py), str(tmp_path / "driver.py"), str(tmp_path / "cell.py"),
                               str(times)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    (first,) = run(1)
    assert Path(first["xcf"]).resolve().is_relative_to(site.resolve()), first
    assert first["cwd"] == str(dest / "notebooks")
    assert first["params"] == str(dest / "notebooks" / "params")
    assert (dest / ".git" / "shallow").is_file()  # a shallow clone
    before = _state(dest, site)
    # A restarted runtime (a new process) runs the cell again, then a re-run in its kernel:
    # the clone and the install are kept.
    assert run(2) == [first, first]
    assert _state(dest, site) == before
