"""Shared fixtures: tiny models with the ``features``/``head`` interface of Eq. 4."""
import os

import pytest
import torch
import torch.nn as nn

os.environ.setdefault("MPLBACKEND", "agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


class TinyNet(nn.Module):
    """conv -> bn -> relu -> pool -> linear; small enough for property tests."""

    def __init__(self, num_classes=3, channels=1, width=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(width * 4, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


class LinearNet(nn.Module):
    """f(x) = W x on flattened input (g = identity), for closed-form attack checks."""

    def __init__(self, weight):
        super().__init__()
        self.head = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.head.weight.copy_(weight)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def tiny_config(**overrides):
    """A training config that runs in about a second: planted 16 px images, small CNN width 8."""
    base = dict(dataset="planted", data_kwargs={"image_size": 16}, n_train=96, n_test=60,
                eval_n=60, model="small_cnn", model_kwargs={"width": 8}, objective="pgd_at",
                eps=4 / 255, attack_steps=2, eval_steps=2, epochs=2, batch_size=32, lr=0.05,
                device="cpu")
    return {**base, **overrides}


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    net = TinyNet()
    # Give BatchNorm non-trivial running statistics, as after training.
    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.rand(16, 1, 8, 8))
    return net.eval()
