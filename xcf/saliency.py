"""Grad-CAM saliency maps (Selvaraju et al., ICCV 2017) through the ``grad-cam`` package,
for Fig. 3c and Fig. 11: samples the best checkpoint classifies correctly under attack and
the last checkpoint does not, with each model's map on its own adversarial example.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .attacks import attack_mode

__all__ = ["target_layer", "gradcam", "best_right_last_wrong", "overlay"]


def target_layer(model: nn.Module) -> nn.Module:
    """The last convolution of a CNN, the layer Grad-CAM reads (for PreActResNet-18 the
    last conv of layer4; for the small CNN its last conv)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise TypeError(f"{type(model).__name__} has no Conv2d layer; Grad-CAM here needs a CNN "
                        "(vision transformers need a reshape transform)")
    return convs[-1]


def gradcam(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Grad-CAM maps for the logits of classes ``y``.

    Args:
        model: a CNN classifier; x: (B, C, H, W) in [0, 1]; y: (B,) target classes.
    Returns:
        (B, H, W) maps in [0, 1] (the package normalises each map).
    """
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as e:  # an optional dependency: say how to get it
        raise ImportError("Grad-CAM needs the grad-cam package: pip install 'xcf[book]' "
                          "or pip install grad-cam") from e
    with attack_mode(model, "eval"):
        for p in model.parameters():  # grad-cam needs gradients through the model
            p.requires_grad_(True)
        with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in y])
    return np.asarray(maps)


def best_right_last_wrong(best: nn.Module, last: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          attack: Callable, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices (in order) of the first ``n`` samples that ``best`` classifies correctly on
    its adversarial example and ``last`` misclassifies on its own, with both adversarial
    batches: ``(idx, x_adv_best, x_adv_last)``, each row aligned with ``idx``."""
    xb, xl = attack(best, x, y), attack(last, x, y)
    with torch.no_grad():
        ok = (best(xb).argmax(1) == y) & (last(xl).argmax(1) != y)
    idx = torch.nonzero(ok).flatten()[:n]
    return idx, xb[idx], xl[idx]


def overlay(image: torch.Tensor, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """An (H, W, 3) picture: the image in grey or colour with the map in 'jet' on top."""
    import matplotlib

    img = image.detach().cpu().numpy().transpose(1, 2, 0)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    return (1 - alpha) * img + alpha * heat
