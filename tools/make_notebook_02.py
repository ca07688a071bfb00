"""Writes notebooks/02_measuring_cross_class_features.ipynb (committed without outputs)."""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
NAME = "02_measuring_cross_class_features"

cells = [
    md("""# Measuring cross-class features (Section 3.1, Algorithm 1)

For a classifier $f(x) = W g(x)$ (Eq. 4), the paper attributes the logit of class $i$ to the
features through the vector $A_i(x) = g(x) \\odot W[i]$ (Eq. 5). Algorithm 1 averages it over the
**adversarial** test examples of each class $y$. The result is one vector $A^y$ per class. The
cosine similarities of these vectors form the *feature attribution correlation matrix*
$C[i,j] = \\cos(A^i, A^j)$ (Eq. 6). The *Class Attribution Similarity* sums its positive
off-diagonal entries, $\\mathrm{CAS}(C) = \\sum_{i \\ne j} \\max(C[i,j], 0)$ (Eq. 7).

A large $C[i,j]$ should mean that the model classifies classes $i$ and $j$ with **shared**
features. With real images we cannot check that directly. So this notebook trains on *planted*
images, where we choose which classes share a visual part. It then asks whether $C$ finds
those pairs."""),
    code("""import sys
if "google.colab" in sys.modules:  # Colab: fetch the repository and install xcf
    import os, subprocess
    subprocess.run("git clone -q https://github.com/xcf-book/xcf /content/xcf && pip install -q -e /content/xcf",
                   shell=True, check=True)
    os.chdir("/content/xcf/notebooks")"""),
    code("""profile = "auto"    # auto: full on a GPU, else smoke | smoke | cpu | full
# Knobs left at None take their value from notebooks/params/<profile>.yaml.
n_train = None       # planted training images
n_test = None        # planted test images
epochs = None        # PGD-AT epochs
eps = None           # l-inf radius for training and for Algorithm 1
attack_steps = None  # PGD steps for Algorithm 1 (training uses 5)
lr = None
width = None         # channels of the small CNN
seed = None""", metadata={"tags": ["parameters"]}),
    code(f"""import matplotlib.pyplot as plt
import torch

import xcf
from xcf import data, models, plots
from xcf.attacks import PGD
from xcf.attribution import measure
from xcf.profiles import notebook_parameters, record_metrics
from xcf.training import fit

P = notebook_parameters("{NAME}", globals())
torch.manual_seed(P.seed)
print(f"profile: {{P.profile}} | xcf {{xcf.__version__}} | torch {{torch.__version__}}")
P"""),
    md("""## Planted data

Each class owns exclusive parts, and each chosen pair of classes also shares a part. The
ground-truth sharing graph comes with the dataset (`ds.sharing`)."""),
    code("""ds = data.load("planted", n_train=P.n_train, n_test=P.n_test, seed=P.seed)
print(ds.name, "train", tuple(ds.x_train.shape), "test", tuple(ds.x_test.shape), "classes", ds.classes)
fig, ax = plt.subplots(figsize=(8, 5))
plots.image_grid(ds.x_test, ds.y_test, ds.classes, per_class=4, ax=ax)
ax.set_title("planted test images, one column per class")
plt.show()"""),
    md("""## Adversarial training

A small CNN, trained with PGD-AT ($\\ell_\\infty$, step $\\epsilon/4$, random start) and SGD with
the piecewise schedule of Table 2, scaled down to a few epochs."""),
    code("""model = models.small_cnn(num_classes=ds.num_classes, in_channels=ds.image_shape[0], width=P.width)
history = fit(model, ds.x_train, ds.y_train, epochs=P.epochs, lr=P.lr, batch_size=64,
              attack=PGD(eps=P.eps, steps=5), seed=P.seed)
for h in history:
    print(f"epoch {h.epoch:2d}  lr {h.lr:.3f}  train robust loss {h.loss:.3f}  train robust acc {h.accuracy:.3f}")"""),
    md("""## Algorithm 1 on the test set

One attack pass (PGD with random start on the true label) gives the robust accuracy and the class
attribution vectors together."""),
    code("""m = measure(model, ds.x_test, ds.y_test, PGD(eps=P.eps, steps=P.attack_steps))
clean = measure(model, ds.x_test, ds.y_test, None)
print(f"[{P.profile}] test robust accuracy {m.accuracy:.3f} | clean accuracy {clean.accuracy:.3f} | CAS {m.cas:.2f}")
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
plots.correlation_heatmap(m.C, axes[0], vmin=0, vmax=1,
                          title=f"C on adversarial test examples\\nRA {m.accuracy:.1%}, CAS {m.cas:.2f} ({P.profile} profile)")
plots.sharing_heatmap(ds.sharing, axes[1])
plt.tight_layout()
plt.show()"""),
    md("""## Does $C$ find the planted pairs?

We compare the off-diagonal entries of $C$ on the planted sharing pairs with those on all
other pairs. We also rank every pair by $C[i,j]$ and check whether the sharing pairs come
first."""),
    code("""K = ds.num_classes
off = ~torch.eye(K, dtype=torch.bool)
shared, other = m.C[ds.sharing], m.C[off & ~ds.sharing]
iu = torch.triu_indices(K, K, offset=1)
pair_scores = m.C[iu[0], iu[1]]
order = pair_scores.argsort(descending=True)
n_shared = int(ds.sharing[iu[0], iu[1]].sum())
top_are_shared = bool(ds.sharing[iu[0][order[:n_shared]], iu[1][order[:n_shared]]].all())
print(f"mean C on sharing pairs {shared.mean():.3f} | on other pairs {other.mean():.3f} | "
      f"min sharing {shared.min():.3f} vs max other {other.max():.3f}")
print(f"the {n_shared} highest-ranked pairs are exactly the planted ones: {top_are_shared}")
metrics = dict(profile=P.profile, robust_accuracy=m.accuracy, clean_accuracy=clean.accuracy,
               cas=m.cas, mean_c_shared=float(shared.mean()), mean_c_other=float(other.mean()),
               min_c_shared=float(shared.min()), max_c_other=float(other.max()),
               top_pairs_are_shared=top_are_shared)
record_metrics("02_measuring_cross_class_features", metrics)"""),
    md("""At this profile the notebook prints its verdict in the last output. The notebook tier of the
test suite reads the recorded metrics back. It requires that the sharing pairs rank above all
other pairs."""),
]

nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, f"notebooks/{NAME}.ipynb")
print("wrote", NAME)
