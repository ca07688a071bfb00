"""xcf: cross-class features in adversarial training.

Companion library to Wei, Guo & Wang, *Identifying and Understanding Cross-Class
Features in Adversarial Training*, ICML 2025.  Each module has one job; the main ones:

- :mod:`xcf.data`         datasets as in-memory tensors (one loader per module), batching
- :mod:`xcf.models`       PreActResNet-18, a small CNN, DeiT-Ti; all ``head(features(x))``
- :mod:`xcf.attacks`      PGD (l-inf, l2) and FGSM with random start
- :mod:`xcf.attribution`  Algorithm 1, CAS (Eq. 7), instance-wise I-CAS
- :mod:`xcf.runs.config`       ``TrainConfig`` (Table 2 defaults) and run keys
- :mod:`xcf.train.loop`     the training loop; :mod:`xcf.train.runner` trains a config into a run folder
- :mod:`xcf.runs.folder`         run folders; :mod:`xcf.runs.checkpoints`, :mod:`xcf.atomic` beneath them
- :mod:`xcf.theory`       the synthetic three-class Gaussian model of Section 4
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
