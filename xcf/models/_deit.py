"""DeiT-Ti, the paper's transformer (Section 3.3): a timm ViT split into features and head."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ._base import FeatureClassifier


class TimmViT(FeatureClassifier):
    """A timm VisionTransformer split into ``features`` (pre-logits: pooled class token
    after the final norm) and its linear ``head``."""

    def __init__(self, backbone: nn.Module, in_channels: int, mean=None, std=None) -> None:
        super().__init__(in_channels, mean, std)
        head = backbone.head
        if not isinstance(head, nn.Linear):
            raise TypeError(f"expected a timm model with a Linear head, got {type(head).__name__}")
        # Move the head out of the backbone so its parameters are registered once.
        backbone.head = nn.Identity()
        self.backbone = backbone
        self.head = head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone.forward_features(x)
        return self.backbone.forward_head(tokens, pre_logits=True)


def deit_tiny(num_classes: int = 10, *, img_size: int = 32, patch_size: int = 4,
              in_channels: int = 3, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> TimmViT:
    """DeiT-Ti (Touvron et al. 2021) for small images, randomly initialised through
    ``timm.create_model('deit_tiny_patch16_224', pretrained=False, ...)``: 32 px with
    4 px patches gives 64 tokens + class token, 5.4M parameters, ``(B, 192)`` features.
    Nothing is downloaded."""
    import timm  # imported here: timm is slow to import and only this model needs it

    backbone = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=img_size,
                                 patch_size=patch_size, num_classes=num_classes,
                                 in_chans=in_channels)
    return TimmViT(backbone, in_channels, mean=mean, std=std)
