"""The packaging files agree with each other and with what the code imports, and a
non-editable install works outside the checkout."""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


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


def test_a_non_editable_install_trains_in_an_empty_folder(tmp_path):
    """``pip install .`` (not editable) gives an xcf that knows nothing of the checkout:
    built as a wheel, installed into a fresh venv and run from an empty folder, ``xcf
    train`` on a copy of configs/smoke.yaml writes its run folder under ./runs.

    Kept fast: the wheel is built offline from a clean copy of the sources (an in-tree
    build would reuse a stale build/lib), the venv borrows this environment's packages
    (torch and the rest) through a .pth line that comes after its own site-packages, and
    the config is the smoke config cut to one short epoch."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "xcf", src / "xcf", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
          "-q", "-w", str(wheels)], cwd=tmp_path)
    (wheel,) = wheels.glob("xcf-*.whl")
    with zipfile.ZipFile(wheel) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"xcf"}, tops

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
          str(wheel)], cwd=tmp_path)
    own_site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         cwd=tmp_path).strip())
    # A plain path line: .venv's own .pth files (its editable xcf hook among them) are not
    # processed, and the entry comes after the venv's site-packages, where the wheel went.
    (own_site / "zz_borrow_xcf_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(py), "-c", "import xcf; print(xcf.__file__)"], cwd=empty).strip()
    assert Path(where).resolve().is_relative_to(own_site.resolve()), where
    assert not Path(where).resolve().is_relative_to(ROOT), where

    config = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    config.update(epochs=1, n_train=64, n_test=32, eval_n=32, eval_steps=2, attack_steps=1,
                  batch_size=32, save_checkpoints_at=[])
    (empty / "smoke.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCF_")}
    env.update(TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    _run([str(venv / "bin" / "xcf"), "train", "smoke.yaml"], cwd=empty, env=env)
    finals = list((empty / "runs").glob("planted-small_cnn-pgd_at-*/final.json"))
    assert len(finals) == 1, sorted(p.name for p in empty.rglob("*"))
    assert sorted(p.name for p in empty.iterdir()) == ["runs", "smoke.yaml"]


def _run(cmd, cwd, env=None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout
