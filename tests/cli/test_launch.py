"""``xcf plan`` / ``xcf launch`` / ``xcf status`` (xcf.cli.launch): a plan holds each run once,
under the key its notebook trains it by, with a KD student after its teacher; submitit's
local executor trains a 3-run plan to the end, the student taught by the planned teacher;
bad input exits 2 with one line."""
import json
from pathlib import Path

import pytest
import yaml

from xcf.cli import main as cli, launch, status
from xcf.companion import costs
from xcf.runs.config import make_config
from xcf.runs.config_file import read_config_file
from xcf.runs.identity import teacher_identity
from xcf.companion.profiles import profile_knobs
from xcf.runs.folder import Run

TINY = dict(dataset="planted", data_kwargs={"image_size": 16}, n_train=96, n_test=60,
            eval_n=60, model="small_cnn", model_kwargs={"width": 4}, objective="pgd_at",
            eps=4 / 255, attack_steps=2, eval_steps=2, epochs=1, batch_size=32, lr=0.05,
            device="cpu")
# Notebook 03 trains TINY and TINY at eps 2/255; notebook 04 trains TINY (the same run as
# 03's) as the teacher of a KD-AT student: three distinct runs of one epoch each.
PROFILE = {
    "03_at_dynamics": {"train": TINY, "curve_eps": [2 / 255, 4 / 255], "n_matrices": 1},
    "04_soft_labels": {"teacher": TINY, "kd_lambda": 0.5, "kd_temperature": 2.0,
                       "kd_form": "eq3"},
}


@pytest.fixture
def params(tmp_path, monkeypatch):
    """A params folder whose smoke profile is PROFILE (read via $XCF_PARAMS_DIR)."""
    d = tmp_path / "params"
    d.mkdir()
    (d / "smoke.yaml").write_text(yaml.safe_dump(PROFILE))
    monkeypatch.setenv("XCF_PARAMS_DIR", str(d))
    return d


def _plan(tmp_path, *extra):
    out = tmp_path / "plan"
    assert cli.main(["plan", "--profile", "smoke", "--notebooks", "03,04", "--out", str(out),
                     "--runs-dir", str(tmp_path / "runs"), *extra]) == 0
    return out, json.loads((out / "plan.json").read_text())


def test_plan_keeps_a_run_two_notebooks_share_once(params, tmp_path, capsys):
    out, p = _plan(tmp_path)
    teacher = make_config(TINY)
    names = [r["name"] for r in p["runs"]]
    # 03: TINY, eps 2/255, (eps 4/255 = TINY); 04: TINY again, the student.
    assert len(names) == 3 == len(set(names))
    shared = next(r for r in p["runs"] if r["name"].endswith(teacher.key()))
    assert shared["notebooks"] == ["03_at_dynamics", "04_soft_labels"]
    assert sorted(path.name for path in out.glob("*.yaml")) == sorted(f"{n}.yaml" for n in names)
    assert "plan smoke: 3 run(s), 3 epochs" in capsys.readouterr().out


def test_plan_configs_have_the_keys_of_the_notebooks_runs(params, tmp_path):
    out, p = _plan(tmp_path)
    asked = [c for nb in ("03_at_dynamics", "04_soft_labels")
             for _, c in costs.notebook_runs(nb, profile_knobs(nb, "smoke"))]
    want = list(dict.fromkeys(make_config(c).key() for c in asked))  # first appearance
    got = [make_config(read_config_file(out / r["config_file"])).key() for r in p["runs"]]
    assert got == want
    assert [r["name"].rsplit("-", 1)[1] for r in p["runs"]] == want


def test_plan_puts_a_kd_student_after_its_teacher_under_the_runs_dir(params, tmp_path):
    out, p = _plan(tmp_path)
    names = [r["name"] for r in p["runs"]]
    (student,) = [r for r in p["runs"] if "-kd_at-" in r["name"]]
    teacher = f"planted-small_cnn-pgd_at-{make_config(TINY).key()}"
    assert student["depends_on"] == [teacher]
    assert names.index(teacher) < names.index(student["name"])
    assert [r["depends_on"] for r in p["runs"] if r is not student] == [[], []]
    kd = read_config_file(out / student["config_file"])["kd"]
    assert kd["teacher"] == str((tmp_path / "runs" / teacher).absolute())


def test_plan_summary_adds_up_the_runs_costs(params, tmp_path):
    _, p = _plan(tmp_path)
    flops = [costs.run_flops(make_config(c)) for c in (TINY, {**TINY, "eps": 2 / 255})]
    assert sum(r["flops"] for r in p["runs"] if "-kd_at-" not in r["name"]) \
        == pytest.approx(sum(flops))
    total = sum(r["flops"] for r in p["runs"])
    assert p["totals"]["flops"] == pytest.approx(total)
    for gpu, (peak, use) in {g: (costs.GPUS[g], costs.ASSUMED_UTILISATION[g])
                             for g in costs.GPUS}.items():
        assert p["totals"]["gpu_hours"][gpu] == pytest.approx(total / (peak * use) / 3600)


def test_a_local_launch_trains_the_plan_and_status_reports_it(params, tmp_path, capsys):
    pytest.importorskip("submitit")  # the cluster extra; .ci/setup installs it
    out, p = _plan(tmp_path)
    assert cli.main(["status", str(out)]) == 0
    assert capsys.readouterr().out.count("not started") == 3
    assert cli.main(["launch", str(out), "--executor", "local", "--gpus-per-job", "0",
                     "--time", "10"]) == 0
    assert cli.main(["status", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "3 of 3 run(s) finished"
    rows = status.plan_status(out)
    assert [r["state"] for r in rows] == ["finished"] * 3
    assert [(r["epochs_done"], r["epochs"]) for r in rows] == [(1, 1), (1, 1), (1, 1)]
    # The student trained against the planned teacher's folder, and logs are per job.
    (student,) = [r for r in rows if "-kd_at-" in r["name"]]
    teacher = Path(rows[0]["folder"])
    assert teacher.name == p["runs"][0]["name"]
    kd = Run(student["folder"]).config["kd"]
    assert Path(kd["teacher"]) == teacher
    # Its key now includes the teacher's best.pt digest: not the key it was planned by.
    assert Path(student["folder"]).name != student["name"]
    assert Path(student["folder"]).name.startswith("planted-small_cnn-kd_at-")
    assert Run(student["folder"]).provenance()["sessions"][-1]["teacher"]["path"] \
        == str(teacher / "checkpoints" / "best.pt")
    jobs = json.loads((out / "jobs.json").read_text())
    for r in rows:
        assert list((out / "logs" / jobs[r["name"]]["job_id"]).glob("*_log.out"))
    # Launching again submits nothing: every run has finished.
    assert cli.main(["launch", str(out), "--executor", "debug"]) == 0
    assert capsys.readouterr().out.count("finished, not submitted") == 3


def test_run_state_reads_the_run_folder(tmp_path):
    """A folder with a config but no epoch, a failed session and a requeued one."""
    run = Run(tmp_path / "planted-small_cnn-pgd_at-abc")
    assert launch.run_state(run) == ("not started", 0, None)
    run.write_config(TINY)

    def session(status, error):
        (run.path / "provenance.json").write_text(json.dumps(
            {"sessions": [{"status": status, "error": error}]}))

    session("failed", "FloatingPointError: non-finite loss")
    assert launch.run_state(run)[0] == "failed"
    session("failed", "SystemExit: -1")  # submitit's requeue exits the job
    assert launch.run_state(run)[0] == "interrupted"


def test_a_train_job_requeues_itself(tmp_path):
    submitit = pytest.importorskip("submitit")
    job = launch.TrainJob("x", TINY, tmp_path)
    again = job.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert again.function is not job and vars(again.function) == vars(job)
    assert again.args == () and again.kwargs == {}


@pytest.mark.parametrize("args, message", [
    (["plan", "--profile", "huge", "--out", "{tmp}/p"], "unknown profile 'huge'"),
    (["plan", "--profile", "smoke", "--notebooks", "03,99", "--out", "{tmp}/p"],
     "unknown notebook '99'"),
    (["plan", "--profile", "smoke", "--notebooks", "02", "--out", "{tmp}/p"],
     "notebook 02 trains its small CNN in memory"),
    (["launch", "{tmp}/none", "--executor", "local"], "holds no plan (no plan.json)"),
    (["status", "{tmp}/none"], "holds no plan (no plan.json)"),
    (["launch", "{plan}", "--executor", "pbs"], "--executor 'pbs' is unknown"),
    (["launch", "{plan}", "--executor", "slurm"], "no Slurm here (sbatch and srun not on PATH)"),
])
def test_bad_input_exits_2_with_one_line(params, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch, whatever the machine
    out, _ = _plan(tmp_path) if "{plan}" in args else (None, None)
    capsys.readouterr()
    args = [a.format(tmp=tmp_path, plan=out) for a in args]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_teacher_identity_of_a_planned_student_is_the_teacher_folder(params, tmp_path):
    """The student's key names its teacher by folder (xcf.runs.identity.teacher_identity), so the
    plan's runs folder and the notebook's (``runs/``) give one key."""
    out, p = _plan(tmp_path)
    (student,) = [r for r in p["runs"] if "-kd_at-" in r["name"]]
    kd = read_config_file(out / student["config_file"])["kd"]
    assert teacher_identity(kd["teacher"]) == student["depends_on"][0]


def test_a_slurm_launch_submits_an_array_and_an_afterok_student(params, tmp_path, monkeypatch,
                                                                 capsys):
    """A stand-in ``sbatch`` records each submitted script and answers as Slurm does, so the
    Slurm path is checked without a cluster: the two runs that wait for nothing go as one
    array, the student waits for its teacher's array task, and jobs requeue on timeout."""
    pytest.importorskip("submitit")
    out, p = _plan(tmp_path)
    bin_dir, scripts = tmp_path / "bin", tmp_path / "scripts"
    bin_dir.mkdir()
    scripts.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\nn=$(ls " + str(scripts) + " | wc -l)\n"
                      "cp \"$1\" " + str(scripts) + "/$((n + 1)).sh\n"
                      "echo \"Submitted batch job $((n + 101))\"\n")
    sbatch.chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it; never run
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert cli.main(["launch", str(out), "--executor", "slurm", "--partition", "gpu",
                     "--gpus-per-job", "2", "--time", "120",
                     "--slurm-option", "account=abc"]) == 0
    first, second = (scripts / "1.sh").read_text(), (scripts / "2.sh").read_text()
    assert sorted(scripts.iterdir()) == [scripts / "1.sh", scripts / "2.sh"]
    assert "#SBATCH --array=0-1" in first and "dependency" not in first
    for script in (first, second):
        for line in ("--partition=gpu", "--gpus-per-node=2", "--time=120",
                     "--account=abc", "--signal=USR2@"):
            assert f"#SBATCH {line}" in script, line
    # The teacher is the array's first task (plan order): job 101, task 0.
    teacher = p["runs"][0]["name"]
    jobs = json.loads((out / "jobs.json").read_text())
    assert jobs[teacher]["job_id"] == "101_0"
    assert "#SBATCH --dependency=afterok:101_0" in second
    (student,) = [r["name"] for r in p["runs"] if r["depends_on"]]
    assert jobs[student]["job_id"] == "102"


def test_the_claims_pages_students_wait_for_c1_of_their_seed(tmp_path, monkeypatch):
    """An 11_claims section that names studies (xcf.companion.claim_runs): C1 at seeds 0 and 1, and a
    KD-AT student at seed 1, taught by C1's seed-1 run."""
    d = tmp_path / "params"
    d.mkdir()
    (d / "gpu.yaml").write_text(yaml.safe_dump({"11_claims": {
        "train": TINY, "seeds": [0, 1], "kd_seeds": [1], "standard_seeds": [],
        "kd_lambda": 0.5, "kd_temperature": 2.0, "kd_form": "eq3"}}))
    monkeypatch.setenv("XCF_PARAMS_DIR", str(d))
    entries = launch.make_plan("gpu", ["11"], tmp_path / "runs")
    c1 = [make_config(TINY, seed=s) for s in (0, 1)]
    assert [e.name for e in entries][:2] == [f"planted-small_cnn-pgd_at-{c.key()}" for c in c1]
    (student,) = entries[2:]
    assert student.config["objective"] == "kd_at" and student.config["seed"] == 1
    assert student.depends_on == [entries[1].name]
    assert student.labels == ["11_claims: C2 KD-AT eq3 seed 1"]


def test_a_stopped_run_shows_interrupted_and_a_launch_resumes_it(tmp_path, monkeypatch,
                                                                  capsys):
    """Stopped after epoch 1 of 2 (as a requeue stops it), the run resumes from last.pt:
    the new session starts from epoch 1 and ends with 2 epochs."""
    from xcf.train.runner import train

    d = tmp_path / "params"
    d.mkdir()
    two = {**TINY, "epochs": 2}
    (d / "smoke.yaml").write_text(yaml.safe_dump({"03_at_dynamics": {
        "train": two, "curve_eps": [4 / 255], "n_matrices": 1}}))
    monkeypatch.setenv("XCF_PARAMS_DIR", str(d))
    out = tmp_path / "plan"
    assert cli.main(["plan", "--profile", "smoke", "--notebooks", "03", "--out", str(out),
                     "--runs-dir", str(tmp_path / "runs")]) == 0

    def stop(row, model, run):
        raise SystemExit(-1)  # what submitit's requeue handler raises in the job

    with pytest.raises(SystemExit):
        train(two, runs_dir=tmp_path / "runs", progress=False, callbacks=[stop])
    (row,) = status.plan_status(out)
    assert (row["state"], row["epochs_done"], row["epochs"]) == ("interrupted", 1, 2)
    assert cli.main(["launch", str(out), "--executor", "debug"]) == 0
    (row,) = status.plan_status(out)
    assert (row["state"], row["epochs_done"]) == ("finished", 2)
    sessions = Run(row["folder"]).provenance()["sessions"]
    assert [s.get("resumed_from_epoch") for s in sessions] == [None, 1]
