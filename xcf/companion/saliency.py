"""Grad-CAM saliency maps (Selvaraju et al., ICCV 2017) through the ``grad-cam`` package,
for Fig. 3c and Fig. 11: samples the best checkpoint classifies correctly under attack and
the last checkpoint does not, with each model's map on its own adversarial example.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from xcf.attacks import attack_mode

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
                          attack: Callable, n: int, *, batch_size: int = 256,
                          generator: Optional[torch.Generator] = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices (in order) of the first ``n`` samples that ``best`` classifies correctly on
    its adversarial example and ``last`` misclassifies on its own (Fig. 3c and Fig. 11 of
    Wei, Guo & Wang, ICML 2025), with both adversarial batches:
    ``(idx, x_adv_best, x_adv_last)``, each row aligned with ``idx``.

    ``x``: ``(N, C, H, W)`` on any device, ``y``: ``(N,)``.  The attacks run
    ``batch_size`` samples at a time on the device of ``best``'s parameters (load both
    models there), and stop once ``n`` samples are found: memory stays at one batch,
    whatever ``N`` (all 10k CIFAR-10 test images in one batch would need tens of GB).
    ``generator`` (on that device) is passed to the attack for its random starts;
    ``None``: the attack draws from the global generator.  ``idx`` is a CPU tensor of
    indices into ``x``; the adversarial examples lie on the models' device."""
    device = _device(best, x)
    kwargs = {} if generator is None else {"generator": generator}
    idx, adv_best, adv_last, found = [], [], [], 0
    for start in range(0, len(y), batch_size):
        if found >= n:
            break
        xs, ys = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        xb, xl = attack(best, xs, ys, **kwargs), attack(last, xs, ys, **kwargs)
        with torch.no_grad():
            ok = (best(xb).argmax(1) == ys) & (last(xl).argmax(1) != ys)
        hit = torch.nonzero(ok).flatten()[:n - found]
        idx.append(hit.cpu() + start)
        adv_best.append(xb[hit])
        adv_last.append(xl[hit])
        found += len(hit)
    if not idx:  # no samples at all
        empty = x[:0].to(device)
        return torch.zeros(0, dtype=torch.long), empty, empty
    return torch.cat(idx), torch.cat(adv_best), torch.cat(adv_last)


def _device(model: nn.Module, x: torch.Tensor) -> torch.device:
    """The device of ``model``'s first parameter; ``x``'s for a model without any."""
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else x.device


def overlay(image: torch.Tensor, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """An (H, W, 3) picture: the image in grey or colour with the map in 'jet' on top."""
    import matplotlib

    img = image.detach().cpu().numpy().transpose(1, 2, 0)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    return (1 - alpha) * img + alpha * heat
