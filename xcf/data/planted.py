"""The planted dataset: synthetic images whose cross-class parts are known.

One concept: *ground truth for C*.  The feature attribution correlation matrix C of
Wei, Guo & Wang (ICML 2025, Eq. 5-6) is meant to be large for class pairs that share
features.  :func:`planted` draws images in which some class pairs provably share a part
(a glyph) and the rest do not, so a measurement of C can be checked against the known
``sharing`` matrix.  Load it with ``xcf.data.load("planted", ...)`` or call
:func:`planted` directly.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from xcf.inputs import ArgumentError, ArgumentTypeError, check_count, check_real
from xcf.data.dataset import Dataset

__all__ = ["planted"]


def planted(n_train: int = 2400, n_test: int = 600, *, num_classes: int = 6,
            image_size: int = 32, channels: int = 3,
            sharing: Sequence[tuple[int, int]] = ((0, 1), (2, 3), (4, 5)),
            noise: float = 0.08, p_exclusive: float = 0.8, exclusive_contrast: float = 0.25,
            shared_contrast: float = 0.4, distractors: int = 3, seed: int = 0,
            erase: str | None = None) -> Dataset:
    """Synthetic images whose cross-class parts are known: the ground truth for C (Eq. 6).

    Generative process (all randomness from ``seed``; train and test draw from separate
    streams, so the test set does not depend on ``n_train``):

    1. **Glyphs.** A bank of random 4x4 binary glyphs, pairwise at Hamming distance >= 4
       also after a horizontal flip (so :func:`xcf.data.batching.augment` cannot turn one into another).
       Class ``c`` owns the *exclusive* glyph ``E_c``; each pair ``(i, j)`` in ``sharing``
       owns a *shared* glyph ``S_ij``; ``distractors`` more glyphs carry no label
       information.
    2. **Image.** A smooth random background (per-sample colour + low-frequency noise).
       The image is split into 2x2 quadrants; the parts of a sample go into distinct random
       quadrants at a random offset inside the quadrant (position carries no label):
       ``E_y`` with probability ``p_exclusive``, shaped ``image_size/4`` px, faint
       (``exclusive_contrast``); every ``S_ij`` with ``y in (i, j)``, always present,
       larger (``3/8 * image_size`` px) and stronger (``shared_contrast``); one random
       distractor (either size, contrast in between) if a quadrant is free. A glyph is
       painted opaquely as ``0.5 + contrast * tint * (2 * bit - 1)`` with a random
       per-channel tint in ``[0.6, 1]``.
    3. Gaussian pixel noise of std ``noise``, then clipping to ``[0, 1]``.

    So ``S_ij`` separates the pair {i, j} from every other class but not i from j
    (discriminative but ambiguous), while the faint ``E_i`` separates i from j and is
    sometimes missing. A model must use ``S_ij`` for both i and j, so the attribution
    vectors of i and j overlap: C[i, j] should exceed C[i, k] for non-sharing pairs.

    ``erase`` (beyond the paper, the causal test of :mod:`xcf.companion.hypotheses`): ``"shared"``
    or ``"exclusive"`` renders the *test* images from the same draws with that kind of
    glyph left unpainted (background and noise there, as if it had never been drawn);
    every other pixel, the training set and the layouts are unchanged.

    Returns a :class:`Dataset` with ``(N, channels, image_size, image_size)`` images,
    balanced classes (``N // K`` each, remainder to the first classes), ``sharing`` as a
    ``(K, K)`` bool matrix, and ``info``: ``glyphs`` ``(M, 4, 4)`` bool, ``exclusive``
    (glyph id per class), ``shared`` (``{(i, j): glyph id}``), ``distractors`` (ids), and
    ``layout_train`` / ``layout_test`` ``(N, 4, 4)`` int64: for each quadrant
    ``(glyph id or -1, top, left, side)``.

    Every parameter is checked before any image is drawn (:func:`_check_params`): sizes
    and counts are integers (not bools), ``noise`` finite and >= 0, ``p_exclusive`` in
    [0, 1], the contrasts in [0, 0.5] (a glyph pixel is 0.5 +- contrast: 0.5 already
    spans black to white, more is clipped away), ``sharing`` pairs of two distinct
    classes in ``[0, num_classes)``; a bad one raises an :mod:`xcf.inputs` error naming it.
    """
    _check_params(n_train, n_test, num_classes, image_size, channels, noise, p_exclusive,
                  exclusive_contrast, shared_contrast, distractors, seed, erase)
    pairs = _check_pairs(sharing, num_classes)
    parts_per_class = [1 + sum(c in p for p in pairs) for c in range(num_classes)]
    if max(parts_per_class) > 4:
        raise ArgumentError(f"sharing {list(sharing)!r} gives a class more than 3 partners "
                            "(4 quadrants: its own glyph and at most 3 shared ones); drop pairs")
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)]
    glyphs = _glyph_bank(num_classes + len(pairs) + distractors,
                         torch.Generator().manual_seed(seeds[0]))
    design = {
        "glyphs": glyphs,
        "exclusive": list(range(num_classes)),
        "shared": {p: num_classes + k for k, p in enumerate(pairs)},
        "distractors": list(range(num_classes + len(pairs), len(glyphs))),
    }
    opts = dict(image_size=image_size, channels=channels, noise=noise, p_exclusive=p_exclusive,
                contrasts=(exclusive_contrast, shared_contrast))
    x_tr, y_tr, lay_tr = _render(n_train, num_classes, design, seeds[1], **opts)
    x_te, y_te, lay_te = _render(n_test, num_classes, design, seeds[2], erase=erase, **opts)
    share = torch.zeros(num_classes, num_classes, dtype=torch.bool)
    for i, j in pairs:
        share[i, j] = share[j, i] = True
    info = dict(design, layout_train=lay_tr, layout_test=lay_te,
                params=dict(opts, sharing=pairs, distractors=distractors, seed=seed,
                            erase=erase))
    classes = [f"c{c}" for c in range(num_classes)]
    return Dataset("planted", x_tr, y_tr, x_te, y_te, classes, sharing=share, info=info)


def _check_params(n_train, n_test, num_classes, image_size, channels, noise, p_exclusive,
                  exclusive_contrast, shared_contrast, distractors, seed, erase) -> None:
    """The scalar parameters of :func:`planted`, each named with its range when wrong."""
    if erase not in (None, "shared", "exclusive"):
        raise ArgumentError(f"erase={erase!r}: use 'shared' or 'exclusive' (or None)")
    check_count(n_train, "n_train", 0, 2400)  # 0: a test set only
    check_count(n_test, "n_test", 1, 600)
    check_count(num_classes, "num_classes", 2, 6)  # one class shares with no other
    # Two quadrants of at least 8 px hold a 4x4 glyph pattern scaled by whole pixels.
    check_count(image_size, "image_size", 16, 32)
    check_count(channels, "channels", 1, 3)
    check_count(distractors, "distractors", 0, 3)
    check_count(seed, "seed", 0, 0)  # numpy's SeedSequence takes no negative seed
    check_real(noise, "noise", 0, None, 0.08)
    check_real(p_exclusive, "p_exclusive", 0, 1, 0.8)
    check_real(exclusive_contrast, "exclusive_contrast", 0, 0.5, 0.25)
    check_real(shared_contrast, "shared_contrast", 0, 0.5, 0.4)


def _check_pairs(sharing, num_classes: int) -> list[tuple[int, int]]:
    """``sharing`` as sorted pairs: each of two distinct class indices (integers, not bools
    or floats, which ``int()`` would silently truncate), no pair twice."""
    if hasattr(sharing, "tolist"):  # a numpy array or tensor of pairs
        sharing = sharing.tolist()
    if isinstance(sharing, (str, bytes)) or not isinstance(sharing, Sequence):
        raise ArgumentTypeError(f"sharing {sharing!r} is not a list of class pairs; pass e.g. "
                                "[(0, 1), (2, 3)]")
    pairs = []
    for p in sharing:
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 2 or not all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in p):
            raise ArgumentTypeError(f"sharing pair {p!r} is not two class indices; pass pairs "
                                    "of integers such as (0, 1)")
        i, j = (int(v) for v in p)
        if i == j or not (0 <= i < num_classes and 0 <= j < num_classes):
            bad = i if not 0 <= i < num_classes else j
            why = (f"names class {bad}, outside [0, {num_classes - 1}] for {num_classes} "
                   f"classes" if i != j else "pairs a class with itself")
            raise ArgumentError(f"sharing pair {tuple(p)} {why}: pass two distinct classes "
                                f"in 0..{num_classes - 1}")
        pair = (min(i, j), max(i, j))
        if pair in pairs:
            raise ArgumentError(f"sharing pair {tuple(p)} given twice; drop the repeat")
        pairs.append(pair)
    return pairs


def _glyph_bank(m: int, gen: torch.Generator, min_dist: int = 4) -> torch.Tensor:
    """``m`` random 4x4 bool glyphs with 5..11 bits set, pairwise Hamming distance
    >= ``min_dist`` including horizontally flipped versions (rejection sampling)."""
    bank: list[torch.Tensor] = []
    for _ in range(100_000):
        if len(bank) == m:
            break
        g = torch.rand(4, 4, generator=gen) < 0.5
        if not 5 <= int(g.sum()) <= 11:
            continue
        variants = (g, g.flip(1))
        if all(int((v ^ b).sum()) >= min_dist for b in bank for v in variants):
            bank.append(g)
    if len(bank) < m:
        raise ValueError(f"cannot draw {m} distinct glyphs; use fewer classes/distractors")
    return torch.stack(bank)


def _render(n: int, k: int, design: dict, seed: int, *, image_size: int, channels: int,
            noise: float, p_exclusive: float, contrasts: tuple[float, float],
            erase: str | None = None):
    """Draw ``n`` labelled images; returns ``x (n, C, S, S)``, ``y (n,)``, layout ``(n, 4, 4)``.
    ``erase``: leave the ``shared`` or ``exclusive`` glyphs unpainted (every draw is made
    as usual, so all else is the same image)."""
    skip = set(design["shared"].values()) if erase == "shared" else (
        set(design["exclusive"]) if erase == "exclusive" else set())
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % k)[torch.randperm(n, generator=gen)]
    q = image_size // 2
    small, large = max(4, image_size // 4), max(6, (3 * image_size) // 8)
    c_excl, c_shared = contrasts
    # Slots per sample: exclusive, the shared glyphs of y's pairs, then a distractor.
    slots = _slots(y, k, design, p_exclusive, small, large, c_excl, c_shared, gen)
    quad = torch.argsort(torch.rand(n, 4, generator=gen), dim=1)  # random distinct quadrants
    x = _background(n, channels, image_size, gen)
    layout = torch.full((n, 4, 4), -1, dtype=torch.long)
    for s, (gid, side, contrast) in enumerate(slots):
        qr, qc = quad[:, s] // 2, quad[:, s] % 2
        top = qr * q + (torch.rand(n, generator=gen) * (q - side + 1)).long()
        left = qc * q + (torch.rand(n, generator=gen) * (q - side + 1)).long()
        tint = 0.6 + 0.4 * torch.rand(n, channels, generator=gen)
        painted = (gid >= 0) & ~torch.isin(gid, torch.tensor(sorted(skip), dtype=gid.dtype))
        for sz in torch.unique(side[gid >= 0]).tolist():
            rows = torch.nonzero(painted & (side == sz)).flatten()
            _paste(x, rows, design["glyphs"][gid[rows]], top[rows], left[rows], int(sz),
                   contrast[rows, None] * tint[rows])
        present = gid >= 0
        layout[present, quad[present, s]] = torch.stack(
            [gid, top, left, side], dim=1)[present]
    x = (x + noise * torch.randn(x.shape, generator=gen)).clamp_(0, 1)
    return x, y, layout


def _slots(y, k, design, p_exclusive, small, large, c_excl, c_shared, gen):
    """Per slot: glyph id (-1 = absent), side and contrast for every sample."""
    n = len(y)
    full = lambda v: torch.full((n,), v)  # noqa: E731
    excl = torch.tensor(design["exclusive"])[y]
    excl = torch.where(torch.rand(n, generator=gen) < p_exclusive, excl, -1)
    slots = [(excl, full(small), full(c_excl))]
    # A class in several pairs needs several shared slots; rank pairs per class.
    max_pairs = max(sum(c in p for p in design["shared"]) for c in range(k))
    table = torch.full((k, max(max_pairs, 1)), -1)
    for c in range(k):
        mine = [g for p, g in design["shared"].items() if c in p]
        table[c, :len(mine)] = torch.tensor(mine, dtype=torch.long)
    for r in range(max_pairs):
        slots.append((table[y, r], full(large), full(c_shared)))
    if design["distractors"] and len(slots) < 4:
        bank = torch.tensor(design["distractors"])
        gid = bank[torch.randint(len(bank), (n,), generator=gen)]
        side = torch.where(torch.rand(n, generator=gen) < 0.5, small, large)
        contrast = c_excl + (c_shared - c_excl) * torch.rand(n, generator=gen)
        slots.append((gid, side, contrast))
    return slots


def _background(n: int, channels: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample base colour in [0.3, 0.7] plus smooth low-frequency variation."""
    base = 0.3 + 0.4 * torch.rand(n, channels, 1, 1, generator=gen)
    coarse = 0.08 * torch.randn(n, channels, 4, 4, generator=gen)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return base + smooth


def _paste(x: torch.Tensor, rows: torch.Tensor, bits: torch.Tensor, top: torch.Tensor,
           left: torch.Tensor, side: int, amp: torch.Tensor) -> None:
    """Paint glyphs ``bits (m, 4, 4)`` opaquely into ``x[rows]`` at ``(top, left)``,
    upsampled (nearest) to ``side`` px, values ``0.5 + amp * (2 bit - 1)``; amp ``(m, C)``."""
    if len(rows) == 0:
        return
    up = F.interpolate(bits[:, None].float(), size=(side, side), mode="nearest")  # (m,1,s,s)
    patch = 0.5 + amp[:, :, None, None] * (2 * up - 1)                           # (m,C,s,s)
    ar = torch.arange(side)
    r = (top[:, None] + ar)[:, :, None]                                           # (m,s,1)
    c = (left[:, None] + ar)[:, None, :]                                          # (m,1,s)
    # Advanced indices separated by a slice put the indexed dims first: (m, s, s, C).
    x[rows[:, None, None], :, r, c] = patch.permute(0, 2, 3, 1)
