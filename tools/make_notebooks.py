"""Writes notebooks 03-10 (committed without outputs).  Run: .venv/bin/python tools/make_notebooks.py

Each notebook: the paper's claim, the Colab cell, a parameters cell, the resolved
parameters, calls into xcf, figures, and a closing cell that prints what was observed at
the profile it ran (so every stated result comes from an executed cell).
"""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

COLAB = """import sys
if "google.colab" in sys.modules:  # Colab: fetch the repository and install xcf
    import os, subprocess
    subprocess.run("git clone -q https://github.com/xcf-book/xcf /content/xcf && pip install -q -e '/content/xcf[book]'",
                   shell=True, check=True)
    os.chdir("/content/xcf/notebooks")"""

SETUP = """import matplotlib.pyplot as plt
import numpy as np

import xcf
from xcf import figures, studies
from xcf.profiles import notebook_parameters, record_metrics
from xcf.studies import run_study

P = notebook_parameters("{name}", globals())
print(f"profile: {{P.profile}} | xcf {{xcf.__version__}}")"""

OBSERVED = """## What we observed

The cell above prints the verdict at the profile this page ran at. The `smoke` profile trains
tiny models for seconds, so it checks that the pipeline works and shows which way the numbers
go. Reproducing the paper's CIFAR-10 numbers takes the `full` profile on a GPU."""


CPU_INTRO = ("## The same at the `cpu` profile (committed results)\n\n"
             "Runs on real Fashion-MNIST images at the setting of the Claims page (a small CNN, 500 "
             "training images, 100 epochs, where PGD-AT robust-overfits), read from `notebooks/results/cpu/`. "
             "They were trained by `tools/run_claims.py`; no training happens here.")
CPU_FIND = """from pathlib import Path
from xcf.profiles import profile_knobs
from xcf.studies import find_study

CPU = Path("results") / "cpu"
K = profile_knobs("{name}", "cpu")
"""
CPU_CELLS = {  # notebook -> code drawing its figures from the committed cpu runs
    "03_at_dynamics": """main = find_study(CPU, K["train"])
curves = {studies.eps_label(e, "fashion-mnist"): find_study(CPU, K["train"], eps=e) for e in K["curve_eps"]}
if main is None:
    print("no committed cpu results under", CPU)
else:
    if all(curves.values()):
        figures.fig1_accuracy_curves(curves, "cpu"); plt.show()
    figures.fig2_three_stages(main, "cpu"); plt.show()
    g = studies.best_last_gap(main)
    print(f"[cpu] CAS best {g['cas_best']:.2f} (epoch {g['best_epoch']}) vs last {g['cas_last']:.2f}; "
          f"RA {g['ra_best']:.1%} vs {g['ra_last']:.1%}")""",
    "04_soft_labels": """teacher = find_study(CPU, K["teacher"])
student = teacher and find_study(CPU, K["teacher"], objective="kd_at",
                                 kd={"teacher": str(teacher.path), "lambda": K["kd_lambda"],
                                     "temperature": K["kd_temperature"]})
if student:
    figures.best_last(student, "KD-AT", "cpu"); plt.show()
    kd, at = studies.best_last_gap(student), studies.best_last_gap(teacher)
    print(f"[cpu] CAS gap KD-AT {kd['cas_gap']:.2f} vs PGD-AT {at['cas_gap']:.2f}")
else:
    print("no committed cpu KD-AT run under", CPU)""",
    "05_perturbation_bound": """sweep = {e: find_study(CPU, K["train"], eps=e) for e in K["eps_list"]}
if all(sweep.values()):
    figures.fig4_differences({studies.eps_label(e, "fashion-mnist"): r for e, r in sweep.items()}, "cpu"); plt.show()
    rows = studies.table1_rows({studies.eps_label(e, "fashion-mnist"): sweep[e] for e in K["table_eps"]}, K["early_epoch"])
    print("Table 1 [cpu profile], CAS / RA"); print(studies.format_table1(rows, studies.PAPER_TABLE1))
else:
    print("no committed cpu ε sweep under", CPU)""",
    "07_fast_at": """fast = find_study(CPU, K["train"], objective="fast_at", eps=K["fast_eps"],
                  fast_at={"alpha": K["fast_alpha"]}, epochs=K["epochs"])
if fast:
    figures.fig7_fast_at(fast, max(1, K["epochs"] // 20), "cpu"); plt.show()
else:
    print("no committed cpu fast-AT run under", CPU)""",
    "08_instance_wise_and_standard": """std = find_study(CPU, K["train"], objective="standard")
if std:
    figures.fig9_standard(std, K["n_standard_matrices"], "cpu"); plt.show()
else:
    print("no committed cpu standard-training run under", CPU)""",
}


def notebook(name, title, claim, knobs, body, closing=OBSERVED):
    params = 'profile = "auto"    # auto: full on a GPU, else smoke | smoke | cpu | full\n'
    params += "# Knobs left at None take their value from notebooks/params/<profile>.yaml.\n"
    params += "\n".join(f"{k} = None{' ' * max(1, 22 - len(k) - 7)}# {doc}" for k, doc in knobs)
    cells = [md(f"# {title}\n\n**What the paper claims.** {claim}"), code(COLAB),
             code(params, metadata={"tags": ["parameters"]}), code(SETUP.format(name=name))]
    for kind, text in body:
        cells.append(md(text) if kind == "md" else code(text))
    if name in CPU_CELLS:
        cells += [md(CPU_INTRO), code(CPU_FIND.format(name=name) + CPU_CELLS[name])]
    if closing:
        cells.append(md(closing))
    for i, cell in enumerate(cells):  # stable ids: regenerating changes only what changed
        cell["id"] = f"{name[:2]}-{i:02d}"
    nb = nbf.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbf.write(nb, f"notebooks/{name}.ipynb")
    print("wrote", name)


notebook(
    "03_at_dynamics", "Training dynamics of adversarial training (Section 3.2, Figs. 1, 2, 10)",
    "During PGD-AT, test robust accuracy (RA) peaks and then falls (robust overfitting), more so "
    "for larger ε (Fig. 1). The matrix C shows more cross-class overlap at the best checkpoint "
    "than at an under-fitted epoch or at the last epoch. CAS rises to the best checkpoint and "
    "then falls: 25.6 at the best against 9.0 at the last epoch for ε = 8/255 on CIFAR-10 (Table 1).",
    [("train", "training config (a dict of xcf.training.TrainConfig keys)"),
     ("curve_eps", "ε values for Fig. 1"), ("n_matrices", "epochs shown in Fig. 10")],
    [("md", "## Fig. 1: robust accuracy for several ε\n\nRuns are keyed by their config, so a run another "
            "notebook already trained is reused."),
     ("code", """ds = P.train["dataset"]
runs = {studies.eps_label(e, ds): run_study(P.train, eps=e) for e in P.curve_eps}
figures.fig1_accuracy_curves(runs, P.profile)
plt.show()"""),
     ("md", "## Fig. 2: under-fitted, best and last checkpoints"),
     ("code", """run = run_study(P.train)
figures.fig2_three_stages(run, P.profile)
plt.show()"""),
     ("md", "## CAS and robust accuracy per epoch; Fig. 10: C during training"),
     ("code", """fig, ax = plt.subplots(figsize=(7, 3.5))
from xcf import plots
plots.cas_and_accuracy(run.metrics(), ax, best_epoch=run.best_epoch,
                       title=f"CAS and test RA, ε={studies.eps_label(P.train['eps'], ds)} [{P.profile} profile]")
plt.show()
figures.fig10_epochs(run, P.n_matrices, P.profile)
plt.show()"""),
     ("code", """gap = studies.best_last_gap(run)
rows = {k: r.metrics() for k, r in runs.items()}
ro = {k: max(x["test_robust_acc"] for x in v) - v[-1]["test_robust_acc"] for k, v in rows.items()}
print(f"[{P.profile}] best epoch {gap['best_epoch']} of {gap['last_epoch']}: "
      f"RA {gap['ra_best']:.1%} -> {gap['ra_last']:.1%}, CAS {gap['cas_best']:.2f} -> {gap['cas_last']:.2f}")
print("robust overfitting (peak test RA minus last test RA) per ε:", {k: f"{v:.1%}" for k, v in ro.items()})
holds = gap["cas_best"] > gap["cas_last"]
print(f"C1, CAS(best) > CAS(last): {'holds' if holds else 'does not hold'} at this profile "
      f"(paper, CIFAR-10 ε=8/255: 25.6 > 9.0)")
record_metrics("03_at_dynamics", dict(profile=P.profile, **gap, overfit_by_eps=ro))"""),
     ]),

notebook(
    "04_soft_labels", "Soft labels keep cross-class features (Section 3.2, Fig. 3a/b)",
    "Adversarial training with knowledge distillation (Eq. 3) learns from the teacher's soft labels, "
    "which carry the features classes share. Its best and last checkpoints have similar matrices, and "
    "the CAS gap between them is small, unlike vanilla PGD-AT. We use the best checkpoint of the "
    "PGD-AT run as the teacher. The paper does not give λ and T; the parameters cell sets them.",
    [("teacher", "config of the PGD-AT run whose best checkpoint teaches"),
     ("kd_lambda", "λ of Eq. 3"), ("kd_temperature", "T of Eq. 3")],
    [("code", """teacher = run_study(P.teacher)
student = run_study(P.teacher, objective="kd_at",
                    kd={"teacher": str(teacher.path), "lambda": P.kd_lambda, "temperature": P.kd_temperature})
figures.best_last(student, "Fig. 3a/b: KD-AT", P.profile)
plt.show()
figures.best_last(teacher, "PGD-AT (the teacher's run), for comparison", P.profile)
plt.show()"""),
     ("code", """kd, at = studies.best_last_gap(student), studies.best_last_gap(teacher)
print(f"[{P.profile}] KD-AT : CAS {kd['cas_best']:.2f} -> {kd['cas_last']:.2f} (gap {kd['cas_gap']:.2f}), "
      f"RA {kd['ra_best']:.1%} -> {kd['ra_last']:.1%}")
print(f"[{P.profile}] PGD-AT: CAS {at['cas_best']:.2f} -> {at['cas_last']:.2f} (gap {at['cas_gap']:.2f}), "
      f"RA {at['ra_best']:.1%} -> {at['ra_last']:.1%}")
if at["cas_gap"] <= 0:
    print("C2, KD-AT's CAS gap < PGD-AT's: not tested at this profile, because PGD-AT's CAS does not "
          "drop from best to last here (there is no gap for distillation to shrink)")
else:
    holds = kd["cas_gap"] < at["cas_gap"]
    print(f"C2, KD-AT's CAS gap < PGD-AT's: {'holds' if holds else 'does not hold'} at this profile")
record_metrics("04_soft_labels", dict(profile=P.profile, kd=kd, pgd_at=at))"""),
     ]),

notebook(
    "05_perturbation_bound", "The perturbation bound ε (Sections 3.3 and 5.1, Fig. 4, Table 1)",
    "For the usual range of ε, the matrix loses more of its cross-class entries between the best and "
    "the last checkpoint as ε grows (Fig. 4). For very large ε the model learns fewer cross-class "
    "features in the first place, so it has fewer to lose: CAS at epoch 10 and at the best checkpoint "
    "falls with ε, and so does the gap between best and last (Table 1).",
    [("train", "training config"), ("eps_list", "ε values of Fig. 4"),
     ("table_eps", "ε values of Table 1"), ("early_epoch", "the 'epoch 10' column of Table 1")],
    [("code", """ds = P.train["dataset"]
runs = {e: run_study(P.train, eps=e) for e in sorted(set(P.eps_list) | set(P.table_eps))}
label = lambda e: studies.eps_label(e, ds)
figures.fig4_differences({label(e): runs[e] for e in P.eps_list}, P.profile)
plt.show()"""),
     ("md", "## Table 1, ours beside the paper's"),
     ("code", """rows = studies.table1_rows({label(e): runs[e] for e in P.table_eps}, P.early_epoch)
print(f"[{P.profile} profile] CAS / RA")
print(studies.format_table1(rows, studies.PAPER_TABLE1))"""),
     ("code", """gaps = [studies.best_last_gap(runs[e])["cas_gap"] for e in P.eps_list]
grows = all(a < b for a, b in zip(gaps, gaps[1:]))
print(f"[{P.profile}] CAS gap (best - last) per ε:", {label(e): round(g, 2) for e, g in zip(P.eps_list, gaps)})
print(f"C3, the CAS gap grows with ε over {len(gaps)} values: {'holds' if grows else 'does not hold'} at this profile")
record_metrics("05_perturbation_bound", dict(profile=P.profile, table1=rows,
                                               cas_gaps={label(e): g for e, g in zip(P.eps_list, gaps)}))"""),
     ]),

notebook(
    "06_norms_datasets_architectures", "Other norms, datasets and architectures (Section 3.3, Figs. 5 and 6)",
    "The drop in cross-class features from the best to the last checkpoint also happens with ℓ2-AT "
    "(ε = 128/255), on CIFAR-100 and Tiny-ImageNet, and with a vision transformer (DeiT-Ti). The smoke "
    "profile cannot download those datasets. It stands in a 10-class planted dataset for the "
    "many-class case and a DeiT-Ti on Fashion-MNIST for the transformer.",
    [("train", "training config (ℓ∞ PGD-AT)"), ("l2_eps", "ε for ℓ2-AT"),
     ("datasets", "name -> config overrides for Fig. 5"), ("vit", "config overrides for DeiT-Ti")],
    [("md", "## Fig. 5: other datasets"),
     ("code", """ds_runs = {name: run_study(P.train, **over) for name, over in P.datasets.items()}
for name, r in ds_runs.items():
    figures.best_last(r, f"Fig. 5: {name}", P.profile, vmin=-0.75, vmax=0.75)
    plt.show()"""),
     ("md", "## Fig. 6: ℓ2-AT and DeiT-Ti"),
     ("code", """l2 = run_study(P.train, norm="l2", eps=P.l2_eps)
figures.best_last(l2, f"Fig. 6a/b: l2-AT, ε={P.l2_eps:g}", P.profile)
plt.show()
vit = run_study(P.train, **P.vit)
figures.best_last(vit, "Fig. 6c/d: DeiT-Ti", P.profile)
plt.show()"""),
     ("code", """summary = {name: studies.best_last_gap(r) for name, r in {**ds_runs, "l2": l2, "deit_tiny": vit}.items()}
for name, g in summary.items():
    print(f"[{P.profile}] {name:>12}: CAS {g['cas_best']:.2f} -> {g['cas_last']:.2f}, "
          f"RA {g['ra_best']:.1%} -> {g['ra_last']:.1%}, best epoch {g['best_epoch']} of {g['last_epoch']}")
record_metrics("06_norms_datasets_architectures", dict(profile=P.profile, **summary))"""),
     ]),

notebook(
    "07_fast_at", "Catastrophic overfitting in fast AT (Section 5.2, Fig. 7)",
    "Fast AT (FGSM with random start) can overfit catastrophically: test robust accuracy suddenly drops "
    "to near 0. When it does, the model forgets its cross-class features, and CAS falls to 2.1 on "
    "CIFAR-10. A large FGSM step makes this likely, so the parameters cell sets a step of 2ε.",
    [("train", "training config"), ("fast_eps", "ε"), ("fast_alpha", "FGSM step"), ("epochs", "epochs")],
    [("code", """run = run_study(P.train, objective="fast_at", eps=P.fast_eps, fast_at={"alpha": P.fast_alpha},
                epochs=P.epochs)
rows = run.metrics()
from xcf import plots
fig, ax = plt.subplots(figsize=(7, 3.5))
plots.cas_and_accuracy(rows, ax, best_epoch=run.best_epoch, title=f"fast AT [{P.profile} profile]")
plt.show()
figures.fig7_fast_at(run, max(1, P.epochs // 20), P.profile)
plt.show()"""),
     ("code", """g = studies.best_last_gap(run)
collapsed = g["ra_last"] < 0.5 * g["ra_best"]
print(f"[{P.profile}] fast AT: RA {g['ra_best']:.1%} (epoch {g['best_epoch']}) -> {g['ra_last']:.1%}; "
      f"CAS {g['cas_best']:.2f} -> {g['cas_last']:.2f}")
if collapsed:
    print(f"C4: robust accuracy collapsed; CAS {'fell' if g['cas_last'] < g['cas_best'] else 'did not fall'} "
          f"(paper: CAS 2.1 after catastrophic overfitting)")
else:
    print("C4: no catastrophic overfitting at this profile (RA did not fall below half its best), "
          "so the claim is not tested here")
record_metrics("07_fast_at", dict(profile=P.profile, collapsed=collapsed, **g))"""),
     ]),

notebook(
    "08_instance_wise_and_standard", "Instance-wise matrices and standard training (Sections 5.3, 5.4, Figs. 8, 9)",
    "Section 5.3 pairs each sample with the most similar sample of the other class, instead of averaging "
    "attribution vectors over a class. With this instance-wise metric, the last checkpoint also uses fewer "
    "cross-class features than the best, for both ℓ∞- and ℓ2-AT (Fig. 8). Standard training "
    "(Section 5.4, Fig. 9) shows little change late in training, and its CAS on clean examples is far "
    "lower than AT's (the paper says AT's is \"generally > 20\").",
    [("train", "training config (ℓ∞ PGD-AT)"), ("l2_eps", "ε for ℓ2-AT"),
     ("n_standard_matrices", "epochs shown in Fig. 9")],
    [("md", "## Fig. 8: instance-wise matrices and I-CAS"),
     ("code", """from xcf.training import measure_run
linf = run_study(P.train)
l2 = run_study(P.train, norm="l2", eps=P.l2_eps)
measured = []
for name, r in (("l-inf", linf), ("l2", l2)):
    for which in ("best", "last"):
        epoch, numbers, adv, clean = measure_run(r.path, which, instance=True)
        measured.append((f"{name} {which} (epoch {epoch})", adv))
figures.instance_pair(measured, P.profile)
plt.show()"""),
     ("md", "## Fig. 9: standard training, on clean examples"),
     ("code", """std = run_study(P.train, objective="standard")
figures.fig9_standard(std, P.n_standard_matrices, P.profile)
plt.show()"""),
     ("code", """icas = {t: m.i_cas for t, m in measured}
for t, v in icas.items():
    print(f"[{P.profile}] I-CAS {t}: {v:.2f}")
std_cas = studies.checkpoint(std, "last", clean=True).cas
at_cas = studies.checkpoint(linf, "best").cas
print(f"[{P.profile}] CAS: standard training (clean, last epoch) {std_cas:.2f} vs PGD-AT (best) {at_cas:.2f}")
print(f"C5, standard training has lower CAS than AT: {'holds' if std_cas < at_cas else 'does not hold'} at this profile")
record_metrics("08_instance_wise_and_standard", dict(profile=P.profile, i_cas=icas, standard_cas=std_cas, at_cas=at_cas))"""),
     ]),

notebook(
    "09_saliency", "Saliency maps of the best and the last checkpoint (Section 3.3, Figs. 3c and 11)",
    "On samples that the best checkpoint classifies correctly under attack and the last checkpoint does "
    "not, Grad-CAM shows the best checkpoint attending to the whole object. That includes parts other "
    "classes share, such as wheels for automobile and truck. The last checkpoint attends to a few "
    "class-specific parts. The paper adds that not every sample reads this clearly.",
    [("train", "training config of the PGD-AT run"), ("n_examples", "samples shown")],
    [("code", """import torch
from xcf import data
from xcf.evaluation import eval_attack
from xcf.config import make_config
from xcf.saliency import best_right_last_wrong, gradcam

run = run_study(P.train)
cfg = make_config(P.train).resolved()
ds_ = data.load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.data_seed, **cfg.data_kwargs)
best, last = run.load_model("best"), run.load_model("last")
torch.manual_seed(0)
idx, xb, xl = best_right_last_wrong(best, last, ds_.x_test, ds_.y_test, eval_attack(cfg), P.n_examples)
y = ds_.y_test[idx]
print(f"[{P.profile}] {len(idx)} test samples shown (at most {P.n_examples}) of {len(ds_.y_test)} searched: "
      "best right and last wrong under attack")
maps_b, maps_l = gradcam(best, xb, y), gradcam(last, xl, y)
figures.saliency_grid(ds_.x_test[idx], maps_b, maps_l, [ds_.classes[int(c)] for c in y], P.profile)
plt.show()"""),
     ("code", """# How spread out each map is: the share of the image above half the map's peak.
spread = lambda m: float((m > 0.5 * m.max(axis=(1, 2), keepdims=True)).mean())
sb, sl = spread(maps_b), spread(maps_l)
print(f"[{P.profile}] share of pixels above half the peak: best {sb:.2f}, last {sl:.2f} "
      f"({'best attends more broadly' if sb > sl else 'best does not attend more broadly'} on these samples)")
record_metrics("09_saliency", dict(profile=P.profile, n=len(idx), spread_best=sb, spread_last=sl))"""),
     ]),

notebook(
    "10_figures", "Every figure, from every profile's results",
    "This notebook trains nothing. It redraws Figs. 1–10 and Table 1 from the run folders that exist "
    "for each profile. Those are this build's runs for the profile it runs at, and the committed results "
    "under `notebooks/results/<profile>/` for the others. Each figure names its profile. Where the paper "
    "prints numbers, they appear beside ours. Figs. 3c, 8 and 11 need model checkpoints, which committed "
    "results leave out, so they appear only for the profile this page ran at.",
    [("profiles", "profiles to look for")],
    [("code", """import os
from pathlib import Path
from xcf.profiles import profile_knobs, runs_dir
from xcf.studies import find_study

def root_of(profile):
    return runs_dir() if profile == P.profile else Path("results") / profile

found = {}
for prof in P.profiles:
    k3, k5 = profile_knobs("03_at_dynamics", prof), profile_knobs("05_perturbation_bound", prof)
    k4, k7 = profile_knobs("04_soft_labels", prof), profile_knobs("07_fast_at", prof)
    k8 = profile_knobs("08_instance_wise_and_standard", prof)
    root = root_of(prof)
    where = os.path.relpath(root.resolve(), Path("..").resolve())  # as seen from the repository
    main = find_study(root, k3["train"])
    if main is None:
        print(f"{prof}: no results under {where}")
        continue
    found[prof] = dict(k3=k3, k5=k5, k4=k4, k7=k7, k8=k8, root=root, main=main)
    print(f"{prof}: results under {where}")"""),
     ("code", """for prof, f in found.items():
    ds, root = f["k3"]["train"]["dataset"], f["root"]
    curves = {studies.eps_label(e, ds): find_study(root, f["k3"]["train"], eps=e) for e in f["k3"]["curve_eps"]}
    if all(curves.values()):
        figures.fig1_accuracy_curves(curves, prof); plt.show()
    figures.fig2_three_stages(f["main"], prof); plt.show()
    teacher = find_study(root, f["k4"]["teacher"])
    student = teacher and find_study(root, f["k4"]["teacher"], objective="kd_at",
                                     kd={"teacher": str(teacher.path), "lambda": f["k4"]["kd_lambda"],
                                         "temperature": f["k4"]["kd_temperature"]})
    if student:
        figures.best_last(student, "Fig. 3a/b: KD-AT", prof); plt.show()
    sweep = {e: find_study(root, f["k5"]["train"], eps=e) for e in f["k5"]["eps_list"]}
    if all(sweep.values()):
        figures.fig4_differences({studies.eps_label(e, ds): r for e, r in sweep.items()}, prof); plt.show()
    table = {e: find_study(root, f["k5"]["train"], eps=e) for e in f["k5"]["table_eps"]}
    if all(table.values()):
        rows = studies.table1_rows({studies.eps_label(e, ds): r for e, r in table.items()}, f["k5"]["early_epoch"])
        print(f"Table 1 [{prof} profile], CAS / RA"); print(studies.format_table1(rows, studies.PAPER_TABLE1))
    fast = find_study(root, f["k7"]["train"], objective="fast_at", eps=f["k7"]["fast_eps"],
                      fast_at={"alpha": f["k7"]["fast_alpha"]}, epochs=f["k7"]["epochs"])
    if fast:
        figures.fig7_fast_at(fast, max(1, f["k7"]["epochs"] // 20), prof); plt.show()
    std = find_study(root, f["k8"]["train"], objective="standard")
    if std:
        figures.fig9_standard(std, f["k8"]["n_standard_matrices"], prof); plt.show()
    figures.fig10_epochs(f["main"], f["k3"]["n_matrices"], prof); plt.show()"""),
     ("code", """print("profiles with results:", sorted(found))
print("paper facts used for comparison:", studies.PAPER_FACTS)
record_metrics("10_figures", dict(profile=P.profile, profiles_found=sorted(found)))"""),
     ]),

notebook(
    "11_claims", "Claims: C1–C5 on real data at CPU scale",
    "Five empirical claims run through the paper: **C1** CAS is higher at the best checkpoint than "
    "at the last one (robust overfitting forgets cross-class features); **C2** knowledge distillation "
    "keeps that gap small; **C3** the gap grows with ε; **C4** fast AT loses CAS when catastrophic "
    "overfitting strikes; **C5** standard training uses fewer cross-class features than AT. "
    "The `full` profile tests them on CIFAR-10 and needs a GPU. This page tests them on real "
    "images on 2 CPU cores: Fashion-MNIST (Debian's `dataset-fashion-mnist`), at the setting "
    "the search below found, where PGD-AT robust-overfits. It trains nothing. It reads the "
    "committed results under `notebooks/results/<results>/`, which `tools/run_claims.py` "
    "produced (metrics, matrices and provenance, no checkpoints). So it shows the same numbers "
    "whatever profile the book was built at. Each rule that turns numbers into a verdict is "
    "written in `xcf.claims`, and the table is regenerated from the artifacts on every build.",
    [("results", "profile whose committed results to read (its 11_claims section names the studies)")],
    [("code", """from pathlib import Path
from IPython.display import Markdown, display
from xcf import claims
from xcf.profiles import profile_knobs

S = profile_knobs("11_claims", P.results)   # the studies: configs, seeds, ε values
root = Path("results") / P.results
found = claims.find_studies(root, S)
print(f"{len(found)} finished runs of {len(list(claims.studies_of(S)))} studies under {root}")
for name, run in found.items():
    prov = run.provenance()
    s = prov["sessions"][-1]
    print(f"  {name:55s} {run.path.name}  commit {str(prov.get('git', {}).get('commit', '?'))[:10]}  "
          f"{s.get('device', '?')}  finished {s.get('end', '?')}")"""),
     ("md", "## The setting: searching for robust overfitting at CPU scale\n\n"
            "A run *robust-overfits* here when test robust accuracy (RA, PGD-10 on 500 test images) "
            "falls at least 3 points from its peak to the end while train robust accuracy keeps rising. "
            "Both are judged on 5-epoch trailing means (`xcf.claims.overfitting`), because one "
            "evaluation on 500 images has a standard error of about 2 points, and the highest of 100 "
            "noisy evaluations sits above the curve. The raw best and last epochs are shown as well. "
            "Every setting tried is listed, not only the one chosen."),
     ("code", """rows = []
for name, config, over in claims.studies_of(S):
    if name.startswith("search: ") and name in found:
        o = claims.overfitting(found[name])
        rows.append({"setting": name[len("search: "):],
                     "peak test RA (epoch)": f"{o['ra_peak']:.1%} ({o['peak_epoch']})",
                     "last test RA": f"{o['ra_last']:.1%}", "drop": f"{100 * o['ra_drop']:.1f} pts",
                     "train RA at peak → last": f"{o['train_ra_at_peak']:.1%} → {o['train_ra_last']:.1%}",
                     "raw best → last (epoch)": f"{o['raw_ra_best']:.1%} ({o['raw_best_epoch']}) → {o['raw_ra_last']:.1%}",
                     "robust overfitting": "yes" if o["overfits"] else "no"})
display(Markdown(claims.markdown_table(rows, list(rows[0]) if rows else ["setting"])))
base = S["train"]
print("chosen setting:", {k: base[k] for k in ("dataset", "n_train", "augment", "model", "model_kwargs",
                                              "eps", "attack_steps", "epochs", "lr", "amp")})"""),
     ("md", "## The claims\n\nOur numbers at the scale above, and the paper's (CIFAR-10, PreActResNet-18, "
            "200 epochs) beside them. *not tested* means the run did not produce the condition the claim "
            "is about, for example no catastrophic overfitting."),
     ("code", """verdicts = claims.decide(found, S)
display(Markdown(claims.markdown_table(verdicts, ["claim", "statement", "ours", "verdict", "paper"])))"""),
     ("md", "## CAS through training, with bootstrap intervals (beyond the paper)\n\n"
            "The shaded band is a 95% percentile interval of CAS over 200 bootstrap resamples of the "
            "test samples, with the perturbations held fixed (`xcf.attribution.bootstrap_cas`). It shows "
            "whether a best-to-last gap is larger than the noise of which test images were drawn."),
     ("code", """seed_runs = {name: run for name, run in found.items() if name.startswith("C1 seed")}
if seed_runs:
    figures.cas_intervals(seed_runs, P.results); plt.show()
for name, run in seed_runs.items():
    g = studies.best_last_gap(run)
    b, l = (studies.row_at(run.metrics(), g[k])["cas_ci95"] for k in ("best_epoch", "last_epoch"))
    print(f"{name}: CAS best {g['cas_best']:.2f} [{b[0]:.2f}, {b[1]:.2f}] vs last {g['cas_last']:.2f} "
          f"[{l[0]:.2f}, {l[1]:.2f}]: intervals {'overlap' if b[0] <= l[1] else 'do not overlap'}")"""),
     ("md", "## CAS as a label-free checkpoint selector (beyond the paper)\n\n"
            "The paper picks the best checkpoint by *test* robust accuracy. Here the epoch is picked by the "
            "CAS of training images that were held out of training (`holdout_n`), so no test label is used. "
            "The *regret* is the test RA lost compared with the test-selected best. Picking by robust "
            "accuracy on the same held-out images, an ordinary validation split, is shown for comparison, "
            "and so is taking the last epoch."),
     ("code", """sel = []
for name, run in seed_runs.items():
    s = claims.label_free_selection(run)
    sel.append({"run": name, "test-selected": f"{s['test_best_ra']:.1%} (epoch {s['test_best_epoch']})",
                "CAS-selected": f"{s['cas_ra']:.1%} (epoch {s['cas_epoch']})", "CAS regret": f"{100 * s['cas_regret']:.1f} pts",
                "held-out-RA-selected": f"{s['holdout_ra_ra']:.1%} (epoch {s['holdout_ra_epoch']})",
                "held-out-RA regret": f"{100 * s['holdout_ra_regret']:.1f} pts", "last-epoch regret": f"{100 * s['last_regret']:.1f} pts",
                "_cas": s["cas_regret"], "_val": s["holdout_ra_regret"], "_last": s["last_regret"]})
if sel:
    display(Markdown(claims.markdown_table(sel, [k for k in sel[0] if not k.startswith("_")])))
    mean = lambda k: 100 * np.mean([r[k] for r in sel])
    print(f"mean regret over {len(sel)} seeds: CAS {mean('_cas'):.1f} pts, held-out RA {mean('_val'):.1f} pts, "
          f"last epoch {mean('_last'):.1f} pts")"""),
     ("md", "## Planted data: where the drop happens (beyond the paper)\n\n"
            "On planted images the class pairs that share a part are known (`xcf.planted`). If robust "
            "overfitting forgets cross-class features, the drop in C from the best to the last epoch "
            "should sit on those pairs."),
     ("code", """planted = found.get("planted")
if planted is not None:
    kw = {**S["train"], **S["planted"]}["data_kwargs"]
    share = claims.sharing_matrix(kw["num_classes"], kw["sharing"])
    figures.planted_drop(planted, share, P.results); plt.show()
    pc = claims.planted_concentration(planted, share)
    o = claims.overfitting(planted)
    print(f"planted: RA {o['ra_peak']:.1%} (epoch {o['peak_epoch']}) -> {o['ra_last']:.1%}; CAS {pc['cas_best']:.2f} -> {pc['cas_last']:.2f}")
    print(f"mean C on sharing pairs {pc['C_share_best']:.2f} -> {pc['C_share_last']:.2f}; "
          f"on other pairs {pc['C_other_best']:.2f} -> {pc['C_other_last']:.2f}")
    print(f"sharing pairs are {pc['share_fraction_of_pairs']:.0%} of the pairs and carry "
          f"{pc['drop_share_of_cas_drop']:.0%} of the drop in CAS's positive parts")
else:
    pc = None
    print("no planted run under", root)"""),
     ("code", """record_metrics("11_claims", dict(profile=P.profile, results=P.results, n_found=len(found),
               verdicts={r["claim"]: r["verdict"] for r in verdicts},
               regrets=[{k: r[k] for k in ("_cas", "_val", "_last")} for r in sel],
               planted=pc))"""),
     ], closing="## Reading these verdicts\n\nThe numbers above come from the committed cpu-scale runs: "
        "a small CNN on 500 Fashion-MNIST training images, 28 × 28 grey-scale, with ε = 0.1. That is not "
        "PreActResNet-18 on CIFAR-10, so compare the paper's column for direction, not size. CAS is a "
        "sum over K(K − 1) = 90 entries for both datasets, so its scale is comparable. The best epoch is "
        "chosen by test RA on 500 images, whose standard error is about 2 points, so the best epoch's RA "
        "is biased upwards by the choice. The label-free selector above does not have that bias.")

notebook(
    "12_performance", "Performance: xcf against the official algorithm",
    "Not a claim of the paper but of this project: xcf trains with PGD-AT and measures Algorithm 1 "
    "with the same algorithm as the official implementation, several times faster. The attack takes "
    "gradients with respect to the input only, with the weights frozen. Images stay in memory and are "
    "augmented on the device. Convolutions run in channels_last, and bf16 autocast is available. "
    "`benchmarks/baseline.py` rewrites the official training step and Algorithm 1 step by step, and "
    "each benchmark times both sides alternately in one process (A B / B A), so drift in the machine's "
    "speed hits both alike.",
    [("batch", "training batch of the live run"), ("steps", "PGD steps of the live run"),
     ("per_class", "images per class for Algorithm 1 in the live run")],
    [("md", "## Recorded at full size\n\nThe benchmarks ran at full size (PreActResNet-18 width 64, batch 64, "
            "PGD-10; Algorithm 1 with PGD-20), one after another, on the 2-core CPU this project is built on. "
            "The logs are committed under `benchmarks/results/`, and `bash benchmarks/record.sh` writes them "
            "again. Each log starts with its command and the benchmark's header: date, load average at the "
            "start, CPU, torch and threads. A log missing from the table was not recorded. Nothing else "
            "ran on the machine while they were recorded. No GPU has been lent to this project's sessions "
            "so far, so the table has no GPU row, and the estimate of a full 200-epoch CIFAR-10 run's "
            "wall time below is for this CPU only. The table sets the printed ratios against the project's targets."),
     ("code", """import subprocess, sys
from pathlib import Path
from IPython.display import Markdown, display
from xcf.claims import markdown_table

ROOT = Path("..").resolve()
sys.path.insert(0, str(ROOT))
from benchmarks import report

rows = report.rows(ROOT / "benchmarks" / "results")
display(Markdown(markdown_table([{**r, "met": report.verdict(r).replace("NOT met", "**not met**")}
                                 for r in rows], ["log", "line", "target", "met"])))
for name in ("train_step", "train_step_compiled", "compile_fp32", "compile_bf16", "attribution",
             "utilisation", "profile_step", "profile_step_compiled"):
    path = ROOT / "benchmarks" / "results" / f"{name}.txt"
    if path.is_file():
        print(path.read_text())"""),
     ("md", "### What these speeds mean for the paper's protocol\n\n"
            "The paper trains for 200 epochs over CIFAR-10's 50,000 training images (Table 2). At the "
            "recorded speeds of this 2-core CPU (batch 64; the paper uses 128), the training steps alone "
            "would take the times below; "
            "the per-epoch evaluation (Algorithm 1 with PGD-20 on the test set) comes on top. That is "
            "why the `full` profile needs a GPU. No GPU has been lent to this project's sessions, so "
            "there is no measured GPU estimate."),
     ("code", """for log in ("train_step.txt", "train_step_compiled.txt"):
    for name, rate in report.rates(log, ROOT / "benchmarks" / "results").items():
        days = report.epochs_wall_time(rate, train_images=50_000, epochs=200) / 24
        print(f"{name:<52} {rate:6.2f} img/s -> 200 CIFAR-10 epochs in {days:5.1f} days")"""),
     ("md", "## Where the training step's speed comes from\n\n"
            "Count the work in units of one forward pass F. The official step runs 10 attack steps of "
            "F + 2F each, because its backward also computes weight gradients and then throws them away. "
            "It adds 3F for the update and F for a clean forward that only logs a training accuracy: 34F "
            "in all. The xcf step runs 10 × (F + F) and 3F: 23F. It leaves out the clean forward, which "
            "changes nothing in training; `tests/test_training.py` checks that the weights come out "
            "bit-identical with and without it. `log_train_clean: true` puts it back, making 24F. So at "
            "equal speed per FLOP, xcf in fp32 can be only 34/23 = 1.48× faster. Channels_last and "
            "eval-mode batch norm add a little, and bf16 roughly doubles the speed of the convolutions. "
            "`utilisation.txt` shows the step already running near the machine's matmul peak, and "
            "`profile_step.txt` breaks the step down by kind of work. Most of what is not convolution "
            "is batch norm, ReLU and additions, and `compile: true` (`model.compile()`) fuses those into "
            "one loop each; `profile_step_compiled.txt` shows what is left, almost all of it convolution. "
            "`compile_fp32.txt` and `compile_bf16.txt` time the eager and the compiled step side by side "
            "in one process, from an empty inductor cache, and print the cold compile time apart, with "
            "the number of steps after which it pays; `train_step_compiled.txt` then sets the compiled "
            "step against the baseline with the cache warm, as in every run after the first. A compile "
            "is paid again for each new input shape and model mode. Whether the eager step "
            "(`train_step.txt`) and the compiled one meet the targets is the table's last column; the "
            "ratios move by several per cent from one recording to the next, as the per-round ranges "
            "and medians in the logs show, because this shared machine's speed drifts.\n\n"
            "Algorithm 1 is bounded the same way. The baseline runs 20 attack steps of 3F, a feature "
            "forward and an accuracy forward: 62F. `xcf.attribution.measure` runs 20 × 2F and one forward "
            "that gives both features and logits: 41F. So fp32 can be at most about 1.5× faster at equal "
            "speed per FLOP. The 3× target therefore applies to the fast path, bf16; the fp32 row is "
            "listed without a target, to show that bound plainly."),
     ("md", "## Live, at smoke size, on the machine that built this page\n\n"
            "The same benchmarks at a size that runs in about a minute. The build machine may be busy, so "
            "read these as a check that the benchmarks run, not as the numbers above."),
     ("code", """def bench(*args):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "OMP_WAIT_POLICY": "PASSIVE"})
    if out.returncode:
        raise RuntimeError(f"{args} failed:\\n{out.stderr[-2000:]}")
    print(out.stdout)
    return out.stdout

import re
live = {"train_step": bench("benchmarks/train_step.py", "--batch", str(P.batch), "--steps", str(P.steps), "--rounds", "1"),
        "attribution": bench("benchmarks/attribution.py", "--per-class", str(P.per_class), "--steps", str(P.steps),
                             "--rounds", "1")}
ratios = {f"{name} {m.group(1)}": float(m.group(2)) for name, text in live.items()
          for m in re.finditer(r"ratio xcf (\\w+) / baseline: ([\\d.]+)x", text)}
record_metrics("12_performance", dict(profile=P.profile, recorded=[{k: r[k] for k in ("log", "value", "met")} for r in rows],
                                      live_ratios=ratios))"""),
     ], closing=None)
