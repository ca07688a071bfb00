"""xcf: cross-class features in adversarial training.

Companion library to Wei, Guo & Wang, *Identifying and Understanding Cross-Class
Features in Adversarial Training*, ICML 2025.  One module per concept:

- :mod:`xcf.data`         datasets as in-memory tensors, device-side augmentation
- :mod:`xcf.models`       PreActResNet-18, a small CNN, DeiT-Ti; all ``head(features(x))``
- :mod:`xcf.attacks`      PGD (l-inf, l2) and FGSM with random start
- :mod:`xcf.attribution`  Algorithm 1, CAS (Eq. 7), instance-wise I-CAS
- :mod:`xcf.theory`       the synthetic three-class Gaussian model of Section 4
"""

__version__ = "0.1.0"
