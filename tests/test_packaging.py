"""The packaging files agree with each other and with what the code imports."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(meta["dependencies"])
    for extra in ("book", "dev"):
        wanted += [r for r in meta["optional-dependencies"][extra]
                   if _name(r) != "torchattacks"]  # installed with --no-deps, see .ci/setup
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [r for r in pip if not r.startswith("-e")]
    assert sorted(r.replace(" ", "") for r in listed) == sorted(r.replace(" ", "") for r in wanted)


def test_constraints_pin_matching_torch_pair_and_jupyter_book_1():
    pins = dict(line.split("==") for line in (ROOT / ".ci/constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"].startswith("2.14.") and pins["torchvision"].startswith("0.29.")
    assert pins["jupyter-book"].startswith("1.")


def test_toc_names_existing_files_and_every_notebook():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = re.findall(r"'file': '([^']+)'", str(toc)) + [toc["root"]]
    for f in files:
        assert (ROOT / f"{f}.md").exists() or (ROOT / f"{f}.ipynb").exists(), f
    notebooks = {f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks <= set(files), f"notebooks missing from _toc.yml: {notebooks - set(files)}"
