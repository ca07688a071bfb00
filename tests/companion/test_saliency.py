"""Grad-CAM wiring: maps have the image's shape, respond to where the evidence is, and the
best-right/last-wrong selection picks exactly those samples."""
import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("pytorch_grad_cam")
from xcf.companion.saliency import best_right_last_wrong, gradcam, overlay, target_layer  # noqa: E402


class LeftEye(nn.Module):
    """Class 1's logit is the mean of the left half of the image, class 0's is its negative:
    the evidence for class 1 lies on the left, so its Grad-CAM map must too."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)

    def forward(self, x):
        left = self.conv(x)[:, 0, :, : x.shape[3] // 2].mean((1, 2))
        return torch.stack([-left, left], 1)


def test_map_shape_and_location():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :, :4] = 1.0
    maps = gradcam(LeftEye(), x, torch.tensor([1, 1]))
    assert maps.shape == (2, 8, 8)
    assert maps[:, :, :4].mean() > maps[:, :, 4:].mean()


def test_target_layer_errors_without_conv():
    with pytest.raises(TypeError, match="no Conv2d"):
        target_layer(nn.Linear(2, 2))


def test_selection_and_overlay():
    class Const(nn.Module):
        def __init__(self, cls):
            super().__init__()
            self.cls = cls
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(len(x), 2)
            out[:, self.cls] = 1
            return out + self.w

    y = torch.tensor([0, 1, 0, 0])
    x = torch.rand(4, 1, 4, 4)
    idx, xb, xl = best_right_last_wrong(Const(0), Const(1), x, y, lambda m, a, b: a, n=2)
    assert idx.tolist() == [0, 2] and xb.shape == (2, 1, 4, 4)
    pic = overlay(x[0], np.zeros((4, 4)))
    assert pic.shape == (4, 4, 3)


class _Fixed(nn.Module):
    """Predicts the class stored for each input, read from the input's first pixel."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        cls = self.table[x[:, 0, 0, 0].long()]
        return nn.functional.one_hot(cls, 2).float() + self.w


def test_selection_in_batches_stops_once_n_are_found_and_keeps_the_order():
    # Sample i carries i in its first pixel; best right & last wrong at 1, 4, 5, 8.
    y = torch.zeros(10, dtype=torch.long)
    x = torch.zeros(10, 1, 2, 2)
    x[:, 0, 0, 0] = torch.arange(10).float()
    best_pred = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 0, 0])
    last_pred = torch.tensor([1, 1, 0, 0, 1, 1, 0, 1, 1, 0])
    seen = []

    def attack(model, a, b):
        seen.append(len(a))
        return a.clone()

    want = [i for i in range(10) if best_pred[i] == 0 and last_pred[i] == 1]
    assert want == [1, 4, 5, 8]
    for n, batch, calls in [(3, 3, 4), (2, 4, 4), (4, 10, 2), (9, 3, 8)]:
        seen.clear()
        idx, xb, xl = best_right_last_wrong(_Fixed(best_pred), _Fixed(last_pred), x, y, attack,
                                            n=n, batch_size=batch)
        assert idx.tolist() == want[:n]
        assert torch.equal(xb[:, 0, 0, 0], torch.tensor(want[:n]).float())  # rows aligned
        assert len(seen) == calls and max(seen) <= batch  # two attacks per batch, then stop
