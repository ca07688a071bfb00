"""One run on several processes (xcf.train.distributed): two gloo ranks on the CPU train the
weights one process trains, whatever the world size a killed run resumes under, and only
rank 0 writes the run folder.

The independent truth is the single-process trainer.  The model is BN-free (DeiT-Ti,
layer norm only, at 16 px with 8 px patches), so the averaged gradient of the two ranks
equals the one-process gradient up to the order of floating-point sums; the objective is
``standard`` (no attack random starts, which each rank draws for itself).  97 training
samples in batches of 32 leave a last batch of one sample: one rank has none of it and
takes the empty step.  Each torchrun launch costs about 10 s on two busy cores.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml

from xcf.runs import folder as runs
from xcf.runs.checkpoints import load_torch
from xcf.data.batching import augment, batches, shard_batches
from xcf.train.distributed import World, shard
from xcf.train.runner import train

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda s: None)
CONFIG = dict(dataset="planted", data_kwargs={"image_size": 16}, n_train=97, n_test=60,
              eval_n=60, model="deit_tiny", model_kwargs={"img_size": 16, "patch_size": 8},
              objective="standard", eps=4 / 255, eval_steps=2, epochs=2, batch_size=32,
              lr=0.02, device="cpu", save_checkpoints_at=[1])

# Run under torchrun: trains CONFIG; on ranks other than 0 every write of a file through
# xcf.atomic (all of a run folder's) and every lock is refused and recorded outside the
# run folder; with "kill", rank 0 dies by SIGKILL right after committing epoch 1.
RANK_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import yaml
    import xcf.atomic, xcf.runs.lock
    from xcf.train.runner import train

    cfg_path, runs_dir, mode, refusals = sys.argv[1:5]
    rank = int(os.environ["RANK"])
    if rank != 0:
        def refuse(path, *args, **kwargs):
            with open(Path(refusals) / f"rank{rank}.txt", "a") as f:
                f.write(f"{path}\\n")
            raise AssertionError(f"rank {rank} wrote {path}")
        xcf.atomic.write = refuse
        xcf.runs.lock._create_lock = refuse

    def die_after_epoch_1(row, model, run):
        if mode == "kill" and row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    train(yaml.safe_load(open(cfg_path)), runs_dir=runs_dir, progress=False,
          log=lambda s: None, callbacks=[die_after_epoch_1])
""")


def env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def torchrun(tmp_path, runs_dir, mode):
    """A 2-rank gloo run of RANK_SCRIPT; returns the exit status."""
    script, cfg_path = tmp_path / "ranks.py", tmp_path / "cfg.yaml"
    script.write_text(RANK_SCRIPT)
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "refusals").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), str(cfg_path), str(runs_dir),
                           mode, str(tmp_path / "refusals")], env=env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def weights(run, which):
    return load_torch(run.path / "checkpoints" / which)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:  # float32 sums in another order: differences of a few ulp, grown by training
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def listing(run):
    return sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*"))


@pytest.mark.parametrize("size", [2, 3])
def test_the_ranks_shares_are_one_process_batches_augmented_as_one_process_does(size):
    # 23 samples in batches of 5, the last of 3: shares of unequal size, some empty.
    x, y = torch.rand(23, 3, 8, 8), torch.arange(23)
    one_gen = torch.Generator().manual_seed(7)
    one = [(augment(xb, generator=one_gen), yb)
           for xb, yb in batches(x, y, 5, shuffle=True, generator=one_gen)]
    seen = [[] for _ in one]
    for rank in range(size):
        world = World(rank=rank, size=size)
        gen = torch.Generator().manual_seed(7)  # every rank's generator: the same stream
        shares = shard_batches(shard(x, world), shard(y, world), 5, rank=rank,
                               world_size=size, n_total=23, generator=gen)
        for b, (xb, yb, rows, n) in enumerate(shares):
            xb = augment(xb, generator=gen, rows=rows, of_batch=n)
            assert n == len(one[b][1])
            assert torch.equal(yb, one[b][1][rows]) and torch.equal(xb, one[b][0][rows])
            assert all(int(i) % size == rank for i in yb)  # samples this rank holds
            seen[b] += rows.tolist()
    assert all(sorted(rows) == list(range(len(yb))) for rows, (_, yb) in zip(seen, one))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run trained by one process, uninterrupted."""
    return train(CONFIG, runs_dir=tmp_path_factory.mktemp("one"), **QUIET)


def test_two_gloo_ranks_train_the_weights_of_one_process(tmp_path, reference):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    out = subprocess.run([sys.executable, "-m", "xcf", "train", str(cfg_path), "--runs-dir",
                          str(tmp_path / "runs"), "--ddp", "2", "--no-progress"], env=env(),
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = (tmp_path / "runs").iterdir()
    run = runs.Run(path)
    assert path.name == reference.path.name  # the run key does not depend on the world size
    assert_same_weights(weights(reference, "epoch_0001.pt"), weights(run, "epoch_0001.pt"))
    assert_same_weights(weights(reference, "last.pt"), weights(run, "last.pt"))
    # The epoch's statistics are the whole data set's (summed over the ranks), and the
    # sharded evaluation gives one process's numbers where no random start enters.
    for one, two in zip(reference.metrics(), run.metrics()):
        assert two["train_clean_acc"] == one["train_clean_acc"]
        assert two["test_clean_acc"] == one["test_clean_acc"] and two["eval_n"] == 60
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
        assert two["cas_clean"] == pytest.approx(one["cas_clean"], rel=1e-4)
    assert listing(run) == listing(reference)
    (session,) = run.provenance()["sessions"]
    assert session["world_size"] == 2 and session["status"] == "finished"
    assert reference.provenance()["sessions"][0]["world_size"] == 1


def test_a_killed_ddp_run_resumes_under_one_or_two_ranks_and_only_rank_0_writes(
        tmp_path, reference):
    killed = torchrun(tmp_path, tmp_path / "cut", "kill")
    assert killed.returncode != 0  # rank 0 was SIGKILLed after epoch 1
    (path,) = (tmp_path / "cut").iterdir()
    cut = runs.Run(path)
    assert cut.load_state()["epoch"] == 1 and not cut.finished and not cut.locked
    shutil.copytree(path, tmp_path / "cut1" / path.name)

    # Under two ranks again...
    again = torchrun(tmp_path, tmp_path / "cut", "resume")
    assert again.returncode == 0, again.stderr[-3000:]
    # ... and under one process, from a copy of the same killed run.
    alone = train(CONFIG, runs_dir=tmp_path / "cut1", wait=0, **QUIET)
    for run, sizes in ((cut, [2, 2]), (alone, [2, 1])):
        assert_same_weights(weights(reference, "last.pt"), weights(run, "last.pt"))
        sessions = run.provenance()["sessions"]
        assert [s["status"] for s in sessions] == ["interrupted", "finished"]
        assert [s["world_size"] for s in sessions] == sizes
        assert sessions[1]["resumed_from_epoch"] == 1
        assert listing(run) == listing(reference)
    # Rank 1 tried to write nothing, in the killed run or the resumed one.
    assert list((tmp_path / "refusals").iterdir()) == []


def test_instance_wise_cas_under_several_ranks_is_refused_before_any_attack():
    """I-CAS (Eq. 5 per sample) has no sharded form: the error names the world size and
    the fix, and comes before the model is called."""
    from xcf.runs.config import make_config
    from xcf.train.evaluation import evaluate
    from xcf.inputs import ArgumentError
    from xcf.models import small_cnn

    calls = []
    model = small_cnn(3, width=4).eval()
    model.register_forward_hook(lambda *a: calls.append(1))
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = make_config({"dataset": "planted", "model": "small_cnn", "eps": 0.1})
    with pytest.raises(ArgumentError, match=r"needs one process, not a world of 2 ranks"):
        evaluate(model, x, y, cfg, 1, instance=True, world=World(rank=0, size=2))
    assert calls == []
