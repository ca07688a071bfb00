"""Finished run folders written by hand, with known per-epoch metrics, for the tests of
the rules that read run folders (xcf.companion.claims, xcf.companion.diagnostics, xcf.companion.claim_runs)."""
import json

import numpy as np
import yaml

from xcf.runs.folder import Run


def make_run(folder, ra, cas, *, train_ra=None, extra=None, matrices=None, name="run"):
    """A finished run folder with the given per-epoch test RA and CAS."""
    path = folder / name
    (path / "matrices").mkdir(parents=True)
    rows = []
    for e, (a, c) in enumerate(zip(ra, cas), start=1):
        row = {"epoch": e, "test_robust_acc": a, "test_clean_acc": a + 0.2, "cas": c, "cas_clean": c / 2,
               "train_robust_acc": (train_ra or [0.1 * e] * len(ra))[e - 1]}
        row.update((extra or {}).get(e, {}))
        rows.append(row)
        C = (matrices or {}).get(e, np.eye(3))
        np.save(path / "matrices" / f"epoch_{e:04d}.npy", np.asarray(C, dtype=np.float32))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best = max(rows, key=lambda r: r["test_robust_acc"])["epoch"]
    (path / "final.json").write_text(json.dumps({"best_epoch": best, "last_epoch": len(rows)}))
    (path / "config.yaml").write_text(yaml.safe_dump({"epochs": len(rows)}))
    return Run(path)
