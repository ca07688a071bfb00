"""Datasets, augmentation and batching, checked against independent constructions:
hand-written CIFAR pickles, IDX files and JPEG trees, numpy's reflect padding, and the
recorded layout of the planted images."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xcf import data
from xcf.data import DATASETS, fashion_mnist, load
from xcf.data.batching import augment, batches
from xcf.data.dataset import Dataset, DatasetUnavailableError
from xcf.data.planted import planted

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------- registry

def test_unknown_name_lists_the_datasets():
    with pytest.raises(ValueError) as err:
        load("mnist")
    assert "mnist" in str(err.value) and all(d in str(err.value) for d in DATASETS)


def test_root_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XCF_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("XCF_DATA")
    assert data.default_root() == Path("data")


# --------------------------------------------------------------------------- CIFAR

def _write_cifar(folder: Path, kind: str, rng: np.random.Generator, per_file: int = 5):
    """A tiny dataset in the CIFAR python format: rows of 3072 bytes = R, G, B planes of
    32x32, row-major."""
    # The real files are Python 2 pickles, whose str keys load as str under latin1.
    label_key = "labels" if kind == "cifar10" else "fine_labels"
    k = 10 if kind == "cifar10" else 100
    files = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if kind == "cifar10"
             else ["train", "test"])
    folder.mkdir(parents=True)
    raw = {}
    for name in files:
        rows = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, k, size=per_file).tolist()
        raw[name] = (rows, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rows, label_key: labels}, f, protocol=2)
    meta_name, meta_key = (("batches.meta", "label_names") if kind == "cifar10"
                           else ("meta", "fine_label_names"))
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"name{i}" for i in range(k)]}, f, protocol=2)
    return raw, files


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_conversion_from_the_python_format(kind, tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    import torchvision.datasets.cifar as tvc

    base = tvd.CIFAR10.base_folder if kind == "cifar10" else tvd.CIFAR100.base_folder
    raw, files = _write_cifar(tmp_path / base, kind, np.random.default_rng(0))
    # Our hand-written files cannot match torchvision's md5 sums.
    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
    ds = load(kind, root=tmp_path, download=False)

    train_rows = np.concatenate([raw[f][0] for f in files[:-1]])
    train_labels = sum((raw[f][1] for f in files[:-1]), [])
    assert ds.x_train.shape == (len(train_rows), 3, 32, 32) and ds.x_train.dtype == torch.float32
    assert ds.y_train.tolist() == train_labels and ds.y_train.dtype == torch.int64
    assert ds.y_test.tolist() == raw[files[-1]][1]
    assert ds.classes[:2] == ["name0", "name1"] and ds.num_classes == (10 if kind == "cifar10" else 100)
    # pixel (n, c, h, w) is byte c*1024 + h*32 + w of row n, scaled to [0, 1]
    for n, c, h, w in [(0, 0, 0, 0), (1, 2, 31, 5), (4, 1, 7, 30)]:
        assert ds.x_train[n, c, h, w].item() == pytest.approx(
            train_rows[n, c * 1024 + h * 32 + w] / 255, abs=1e-7)
    assert ds.x_test[2, 1, 3, 4].item() == pytest.approx(
        raw[files[-1]][0][2, 1024 + 3 * 32 + 4] / 255, abs=1e-7)


def test_cifar_unavailable_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(tvd, "CIFAR10", type("Fake", (), {
        "__new__": offline, "base_folder": "cifar-10-batches-py",
        "url": tvd.CIFAR10.url, "__name__": "CIFAR10"}))
    with pytest.raises(DatasetUnavailableError) as err:
        load("cifar10", root=tmp_path)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and str(tmp_path) in msg and "download=True" in msg


def test_cifar_absent_without_download(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="cifar-100-python"):
        load("cifar100", root=tmp_path, download=False)


# --------------------------------------------------------------------------- Tiny-ImageNet

COLOURS = {"n001": (220, 30, 30), "n002": (30, 200, 40), "n003": (40, 50, 210)}


def _tiny_tree(root: Path) -> Path:
    """Official layout with 3 classes; every image is a solid colour telling its class."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("n003\nn001\nn002\n")  # not sorted on purpose
    (base / "words.txt").write_text("n001\tgoldfish, Carassius auratus\nn002\tbullfrog\n"
                                    "n003\ttabby, tabby cat\nn999\tunused\n")
    for wnid, colour in COLOURS.items():
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (64, 64), colour).save(folder / f"{wnid}_{i}.JPEG")
    lines = []
    for i, wnid in enumerate(["n002", "n003", "n001", "n001", "n003", "n002"]):
        name = f"val_{i}.JPEG"
        img = Image.new("RGB", (64, 64), COLOURS[wnid])
        if i == 1:
            img = img.resize((32, 32))  # odd size: must be resized back to 64x64
        img.save(base / "val" / "images" / name)
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    Image.new("L", (64, 64), 128).save(base / "val" / "images" / "grey.JPEG")
    lines.append("grey.JPEG\tn002\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


def _colour_class(x: torch.Tensor, classes: list[str]) -> list[str]:
    """Name the class whose colour is nearest to each image's mean colour."""
    names = {"n001": "goldfish", "n002": "bullfrog", "n003": "tabby"}
    ref = torch.tensor([COLOURS[w] for w in names], dtype=torch.float32) / 255
    mean = x.mean(dim=(2, 3))
    return [list(names.values())[i] for i in torch.cdist(mean, ref).argmin(1).tolist()]


def test_tiny_imagenet_layout(tmp_path):
    base = _tiny_tree(tmp_path)
    ds = load("tiny-imagenet", root=tmp_path, download=False)
    assert ds.classes == ["goldfish", "bullfrog", "tabby"]  # sorted wnids, first synonym
    assert ds.x_train.shape == (12, 3, 64, 64) and ds.x_test.shape == (7, 3, 64, 64)
    assert torch.bincount(ds.y_train).tolist() == [4, 4, 4]
    # labels agree with the pictures, so val labels came from val_annotations.txt
    colour_named = [ds.classes[i] for i in ds.y_train]
    assert _colour_class(ds.x_train, ds.classes) == colour_named
    coloured = ds.y_test != 1  # the grey image is labelled n002 (bullfrog) but has no colour
    assert ds.y_test.tolist().count(1) == 3
    assert [ds.classes[i] for i in ds.y_test[coloured]] == [
        c for c, keep in zip(_colour_class(ds.x_test, ds.classes), coloured) if keep]
    assert (base / "xcf-cache.pt").exists()
    # a second load reads the cache and gives the same tensors; subsets are stratified
    again = load("tiny-imagenet", root=tmp_path, download=False, n_train=6, n_test=3)
    assert torch.bincount(again.y_train).tolist() == [2, 2, 2]
    assert torch.bincount(again.y_test, minlength=3).tolist() == [1, 1, 1]


def test_tiny_imagenet_subset_without_cache(tmp_path):
    base = _tiny_tree(tmp_path)
    ds = load("tiny-imagenet", root=tmp_path, download=False, n_train=3, n_test=3, cache=False)
    assert torch.bincount(ds.y_train).tolist() == [1, 1, 1]
    assert not (base / "xcf-cache.pt").exists()


def test_tiny_imagenet_absent(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="tiny-imagenet-200"):
        load("tiny-imagenet", root=tmp_path, download=False)


# --------------------------------------------------------------------------- Fashion-MNIST

def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, (img, lab) in fashion_mnist._FASHION_FILES.items():
        n = 20 if split == "train" else 10
        arrays[split] = (rng.integers(0, 256, (n, 28, 28)), np.arange(n) % 10)
        _write_idx(tmp_path / img, arrays[split][0])
        _write_idx(tmp_path / lab, arrays[split][1])
    ds = load("fashion-mnist", source_dir=tmp_path, root=tmp_path / "none")
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), arrays["train"][0] / 255, atol=1e-7)
    assert ds.y_test.tolist() == list(range(10))
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    padded = load("fashion-mnist", source_dir=tmp_path, root=tmp_path / "none", pad_to=32)
    assert padded.image_shape == (1, 32, 32)
    torch.testing.assert_close(padded.x_train[:, :, 2:30, 2:30], ds.x_train)
    assert padded.x_train[:, :, :2].abs().sum() == 0
    resized = load("fashion-mnist", source_dir=tmp_path, root=tmp_path / "none", image_size=32)
    assert resized.image_shape == (1, 32, 32) and 0 <= resized.x_train.min() <= resized.x_train.max() <= 1


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + bytes(12))
    with pytest.raises(ValueError, match="IDX"):
        fashion_mnist.read_idx(tmp_path / "bad")


def test_fashion_mnist_absent_says_apt_get(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIRS", (tmp_path / "nowhere",))
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load("fashion-mnist", root=tmp_path, download=False)


@pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_real_files(tmp_path):
    ds = load("fashion-mnist", root=tmp_path)  # empty root: must come from the Debian files
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.x_train.min() == 0 and ds.x_train.max() == 1
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.classes == fashion_mnist.FASHION_MNIST_CLASSES
    # the mean image of "Trouser" has an empty gap between the legs, "Bag" does not
    mean = lambda k: ds.x_train[ds.y_train == k, 0].mean(0)  # noqa: E731
    assert mean(1)[14:24, 13:15].mean() < mean(8)[14:24, 13:15].mean()


# --------------------------------------------------------------------------- augment

def _reference_crops(img: torch.Tensor, padding: int) -> list[tuple[tuple, torch.Tensor]]:
    """Every crop of a numpy reflect-padded image, plain and mirrored."""
    c, h, w = img.shape
    padded = torch.from_numpy(np.pad(img.numpy(), ((0, 0), (padding,) * 2, (padding,) * 2),
                                     mode="reflect"))
    out = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            out += [((dy, dx, False), crop), ((dy, dx, True), torch.flip(crop, dims=[2]))]
    return out


def _which_crop(out: torch.Tensor, img: torch.Tensor, padding: int) -> tuple:
    hits = [key for key, crop in _reference_crops(img, padding) if torch.equal(out, crop)]
    assert hits, "output is not a reflect-padded crop of its input"
    return hits[0]


def test_augment_matches_reflect_pad_crop_and_flip():
    b, c, h, w = 64, 2, 6, 7
    x = torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)  # all pixels distinct
    out = augment(x, padding=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    keys = [_which_crop(out[i], x[i], 3) for i in range(b)]
    assert any(k[2] for k in keys) and not all(k[2] for k in keys)  # both flipped and plain
    assert len({k[:2] for k in keys}) > 10  # offsets differ between samples


def test_augment_identity_and_flip_only():
    x = torch.rand(8, 3, 5, 5)
    torch.testing.assert_close(augment(x, padding=0, flip=False), x, rtol=0, atol=0)
    flipped = augment(x, padding=0, flip=True, generator=torch.Generator().manual_seed(1))
    for i in range(8):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))
    crops = augment(x, padding=2, flip=False, generator=torch.Generator().manual_seed(1))
    for i in range(8):  # flip=False: always an unmirrored crop
        assert any(torch.equal(crops[i], crop)
                   for (_, _, mirrored), crop in _reference_crops(x[i], 2) if not mirrored)


def test_augment_is_deterministic_given_a_generator():
    x = torch.rand(16, 3, 8, 8)
    a = augment(x, generator=torch.Generator().manual_seed(5))
    b = augment(x, generator=torch.Generator().manual_seed(5))
    c = augment(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_zero_padding_mode():
    x = torch.ones(32, 1, 4, 4)
    out = augment(x, padding=2, mode="constant", generator=torch.Generator().manual_seed(0))
    assert (out == 0).any() and set(out.unique().tolist()) <= {0.0, 1.0}


# --------------------------------------------------------------------------- batches

def test_batches_cover_each_sample_once():
    x, y = torch.arange(103).float()[:, None], torch.arange(103)
    gen = torch.Generator().manual_seed(0)
    got = list(batches(x, y, 25, shuffle=True, generator=gen))
    assert [len(b[1]) for b in got] == [25, 25, 25, 25, 3]
    seen = torch.cat([b[1] for b in got])
    assert sorted(seen.tolist()) == list(range(103)) and seen.tolist() != list(range(103))
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in got)  # pairs stay aligned
    second = torch.cat([b[1] for b in batches(x, y, 25, shuffle=True, generator=gen)])
    assert not torch.equal(seen, second)  # a new order each epoch
    plain = torch.cat([b[1] for b in batches(x, y, 25, shuffle=False)])
    assert plain.tolist() == list(range(103))
    with pytest.raises(ValueError):
        next(batches(x, y[:5], 4, shuffle=False))


# --------------------------------------------------------------------------- planted

@pytest.fixture(scope="module")
def clean():
    """Noise-free planted data so the painted glyphs can be read back exactly."""
    return planted(600, 120, noise=0.0, seed=3)


def _bits_at(x: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    """Read a 4x4 glyph back from an image: sign of the region around 0.5, then one bit per
    cell; asserts that every pixel of a cell and every channel agree."""
    region = x[:, top:top + side, left:left + side] > 0.5          # (C, s, s)
    assert (region == region[:1]).all(), "channels disagree"
    cell = side // 4
    assert side % 4 == 0
    blocks = region[0].reshape(4, cell, 4, cell)
    assert (blocks == blocks[:, :1, :, :1]).all(), "a glyph cell is not uniform"
    return blocks[:, 0, :, 0]


def test_planted_is_deterministic_and_seeded():
    a, b = planted(120, 60, seed=7), planted(120, 60, seed=7)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, planted(120, 60, seed=8).x_train)
    # the test set does not depend on how many training images were drawn
    assert torch.equal(a.x_test, planted(300, 60, seed=7).x_test)


def test_planted_shapes_balance_and_sharing(clean):
    assert clean.x_train.shape == (600, 3, 32, 32) and clean.x_train.dtype == torch.float32
    assert 0 <= clean.x_train.min() and clean.x_train.max() <= 1
    assert torch.bincount(clean.y_train).tolist() == [100] * 6
    assert torch.bincount(clean.y_test).tolist() == [20] * 6
    s = clean.sharing
    assert s.dtype == torch.bool and torch.equal(s, s.T) and not s.diagonal().any()
    assert {tuple(p) for p in torch.nonzero(torch.triu(s)).tolist()} == {(0, 1), (2, 3), (4, 5)}
    g = planted(60, 12, num_classes=4, channels=1, image_size=16, sharing=[(2, 0)])
    assert g.image_shape == (1, 16, 16) and g.sharing[0, 2] and g.sharing.sum() == 2


def test_planted_parts_are_where_the_layout_says(clean):
    info, x, y, layout = clean.info, clean.x_train, clean.y_train, clean.info["layout_train"]
    glyphs = info["glyphs"]
    for n in range(0, 600, 7):
        for gid, top, left, side in layout[n].tolist():
            if gid >= 0:
                assert torch.equal(_bits_at(x[n], top, left, side), glyphs[gid])


def test_planted_shared_part_appears_in_both_classes_of_its_pair_only(clean):
    info, y, layout = clean.info, clean.y_train, clean.info["layout_train"]
    present = torch.zeros(len(y), len(info["glyphs"]), dtype=torch.bool)
    for n in range(len(y)):
        ids = layout[n, :, 0]
        present[n, ids[ids >= 0]] = True
    for (i, j), gid in info["shared"].items():
        holds = present[:, gid]
        assert holds[(y == i) | (y == j)].all()          # every image of both classes
        assert not holds[(y != i) & (y != j)].any()       # no image of any other class
    for c, gid in enumerate(info["exclusive"]):
        assert not present[y != c, gid].any()
        assert 0.6 < present[y == c, gid].float().mean() < 0.95  # p_exclusive = 0.8
    for gid in info["distractors"]:  # carry no label information: every class has them
        assert all(present[y == c, gid].any() for c in range(6))
    # glyphs are distinct, also under the horizontal flip of augment()
    flat = info["glyphs"].flatten(1)
    flips = info["glyphs"].flip(2).flatten(1)
    dist = (flat[:, None] ^ flat[None]).sum(-1) + torch.eye(len(flat), dtype=torch.long) * 99
    assert dist.min() >= 4 and ((flat[:, None] ^ flips[None]).sum(-1) + torch.eye(
        len(flat), dtype=torch.long) * 99).min() >= 4


def test_planted_rejects_bad_pairs():
    with pytest.raises(ValueError):
        planted(10, 10, sharing=[(0, 0)])
    with pytest.raises(ValueError):
        planted(10, 10, num_classes=3, sharing=[(0, 5)])
    with pytest.raises(ValueError):
        planted(10, 10, sharing=[(0, 1), (1, 0)])


def test_load_planted_passes_sizes_and_options():
    ds = load("planted", n_train=60, n_test=30, seed=2, channels=1)
    assert len(ds.y_train) == 60 and len(ds.y_test) == 30 and ds.image_shape == (1, 32, 32)
    assert torch.equal(ds.x_train, planted(60, 30, channels=1, seed=2).x_train)


def test_planted_sharing_pairs_get_correlated_attributions():
    """The design goal: after a short standard training of a small CNN, the class
    attribution vectors (Eq. 5, averaged per class) of a sharing pair are more similar
    (cosine, Eq. 6) than those of any other pair."""
    from xcf.models import small_cnn

    ds = planted(1200, 300, seed=0)
    torch.manual_seed(0)
    model = small_cnn(6, in_channels=3, width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for xb, yb in batches(ds.x_train, ds.y_train, 64, shuffle=True, generator=gen):
            loss = F.cross_entropy(model(augment(xb, generator=gen)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        g, w = model.features(ds.x_test), model.head.weight
        assert (model.head(g).argmax(1) == ds.y_test).float().mean() > 0.3  # learned something
        a = torch.stack([(g[ds.y_test == i] * w[i]).mean(0) for i in range(6)])
        c = F.normalize(a, dim=1) @ F.normalize(a, dim=1).T
    off = ~torch.eye(6, dtype=torch.bool)
    assert c[ds.sharing].min() > c[off & ~ds.sharing].max() + 0.3, c


# --------------------------------------------------------------------------- subset / to

def test_subset_is_stratified_and_keeps_per_sample_info(clean):
    sub = clean.subset(60, 30, seed=1)
    assert torch.bincount(sub.y_train).tolist() == [10] * 6
    assert torch.bincount(sub.y_test).tolist() == [5] * 6
    assert torch.equal(sub.x_train, clean.subset(60, 30, seed=1).x_train)
    assert not torch.equal(sub.x_train, clean.subset(60, 30, seed=2).x_train)
    # per-sample layout follows the images it describes
    idx = [int((clean.x_train == xi).flatten(1).all(1).nonzero()) for xi in sub.x_train[:5]]
    assert torch.equal(sub.info["layout_train"][:5], clean.info["layout_train"][idx])
    assert len(sub.info["layout_test"]) == 30 and sub.sharing is clean.sharing
    whole = clean.subset(None, None)
    assert torch.equal(whole.x_train, clean.x_train)


def test_subset_with_uneven_classes():
    y = torch.tensor([0] * 50 + [1] * 3 + [2] * 50)
    ds = Dataset("toy", torch.zeros(len(y), 1, 2, 2), y, torch.zeros(4, 1, 2, 2),
                 torch.arange(4) % 2, ["a", "b", "c"])
    counts = torch.bincount(ds.subset(31, None).y_train).tolist()
    assert counts[1] == 3 and sum(counts) == 31 and abs(counts[0] - counts[2]) <= 1
    assert ds.to("cpu").y_train is not None and "toy" in repr(ds)
    assert ds.num_classes == 3 and ds.image_shape == (1, 2, 2)


# --------------------------------------------------------------------------- uint8 storage

def test_uint8_to_float_gives_every_byte_over_255_in_float32():
    from xcf.data.dataset import uint8_to_float

    b = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    want = np.arange(256, dtype=np.float32) / np.float32(255)  # numpy's IEEE division
    got = uint8_to_float(b)
    assert got.dtype == torch.float32 and got.shape == b.shape
    assert np.array_equal(got.flatten().numpy(), want)


def test_as_uint8_packs_byte_images_exactly_and_refuses_all_others():
    from xcf.data.dataset import as_uint8, from_uint8

    raw = torch.randint(0, 256, (7, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator()
                        .manual_seed(0))
    ds = from_uint8("x", raw, [0] * 7, raw[:2], [0, 0], ["a"], None, None, 0)
    packed = as_uint8(ds.x_train, chunk=3)  # chunks of 3 samples: the last one partial
    assert packed.dtype == torch.uint8 and torch.equal(packed, raw.permute(0, 3, 1, 2))
    x = ds.x_train
    assert as_uint8(x.double()) is None                       # not float32
    assert as_uint8(x * 0.999) is None                        # not k / 255
    bad = x.clone()
    bad[6, 0, 0, 0] = 0.5                                     # one value in the last chunk
    assert as_uint8(bad, chunk=3) is None
    assert as_uint8(x - 1 / 255) is None                      # below 0
    zero = torch.zeros(1, 1, 2, 2)
    zero[0, 0, 0, 0] = -0.0
    assert as_uint8(zero) is None                             # -0.0 has no byte


def test_planted_images_are_not_bytes():
    from xcf.data.dataset import as_uint8

    assert as_uint8(load("planted", n_train=20, n_test=10).x_train) is None


@pytest.mark.parametrize("kind", ["shared", "exclusive"])
def test_planted_erasure_changes_only_the_named_glyphs(kind):
    """The causal test's erased test sets (issue 28): the same draws, with every glyph of
    the named kind unpainted and nothing else changed; the training set is untouched."""
    from xcf.data.planted import planted

    kw = dict(n_train=40, n_test=60, num_classes=6, image_size=16, channels=1, seed=3)
    a, b = planted(**kw), planted(**kw, erase=kind)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    ids = set(a.info["shared"].values()) if kind == "shared" else set(a.info["exclusive"])
    inside = torch.zeros_like(a.x_test, dtype=torch.bool)
    boxes = 0
    for i, quads in enumerate(a.info["layout_test"].tolist()):
        for gid, top, left, side in quads:
            if gid in ids:
                inside[i, :, top:top + side, left:left + side] = True
                boxes += 1
                # the glyph was there and is gone: its box changed
                assert not torch.equal(a.x_test[i, :, top:top + side, left:left + side],
                                       b.x_test[i, :, top:top + side, left:left + side])
    assert boxes > 0
    assert torch.equal(a.x_test[~inside], b.x_test[~inside])


def test_planted_erasure_names_its_choices():
    from xcf.data.planted import planted

    with pytest.raises(ValueError, match="erase='both'.*'shared' or 'exclusive'"):
        planted(n_train=10, n_test=10, erase="both")
