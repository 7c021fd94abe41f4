"""Splits per docs/protocol.md (sizes, disjoint, seeded), the image-folder reader and its cache, and
the device batch pipeline (deterministic, zero-padded crop + flip, val/test never augmented)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from study.train import data as data_mod
from study.train.config import DataConfig
from study.train.loader import Batches, Normalize, eval_batches, random_crop

PROTOCOL_SIZES = [  # name, official train, official test, expected train, val
    ("cifar10", 50_000, 10_000, 45_000, 5_000),
    ("cifar100", 50_000, 10_000, 45_000, 5_000),
    ("svhn", 73_257, 26_032, 68_257, 5_000),
    ("tiny_imagenet", 100_000, 10_000, 90_000, 10_000),
]


def raw(n_train: int, n_test: int, classes: int = 10) -> data_mod.RawData:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n_train, 3, 1, 1), dtype=np.uint8)
    y = np.arange(n_train) % classes
    return data_mod.RawData(x, y, x[:n_test].copy(), y[:n_test].copy())


@pytest.mark.parametrize("name,n_train,n_test,train,val", PROTOCOL_SIZES)
def test_protocol_split_sizes(name, n_train, n_test, train, val):
    spec = data_mod.get(name)
    d = data_mod.split(DataConfig(name), spec, raw(n_train, n_test))
    assert d.sizes() == {"train": train, "val": val, "test": n_test}


def test_split_is_the_reference_permutation_and_disjoint():
    cfg = DataConfig("fake", split_seed=3, val_size=100)
    r = raw(1000, 10)
    r.train_x = np.arange(1000, dtype=np.int64)[:, None, None, None]  # image = its own index
    d = data_mod.split(cfg, data_mod.get("fake"), r)
    perm = np.random.RandomState(3).permutation(1000)
    assert d.train_x.flatten().tolist() == perm[:900].tolist()
    assert d.val_x.flatten().tolist() == perm[900:].tolist()
    assert set(d.train_x.flatten().tolist()).isdisjoint(d.val_x.flatten().tolist())


def test_split_is_deterministic_by_seed_and_subsets_are_seeded():
    spec, r = data_mod.get("fake"), raw(1000, 200)
    a = data_mod.split(DataConfig("fake", split_seed=1, train_size=50, test_size=30), spec, r)
    b = data_mod.split(DataConfig("fake", split_seed=1, train_size=50, test_size=30), spec, r)
    c = data_mod.split(DataConfig("fake", split_seed=2, train_size=50, test_size=30), spec, r)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    assert not torch.equal(a.val_x, c.val_x)
    assert a.sizes() == {"train": 50, "val": 200, "test": 30}


def test_oversized_subset_is_a_data_error():
    with pytest.raises(data_mod.DataError, match="train_size"):
        data_mod.split(DataConfig("fake", train_size=10_000), data_mod.get("fake"), raw(500, 10))


def test_digits_is_offline_and_sized():
    d = data_mod.load(DataConfig("digits"))
    assert d.sizes() == {"train": 1137, "val": 300, "test": 360}
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape[1:] == (1, 8, 8)
    assert d.pad == 0 and not d.flip and d.num_classes == 10


def test_missing_cifar_offline_says_where(tmp_path):
    with pytest.raises(data_mod.DataError, match="cifar-10-batches-py"):
        data_mod.load(DataConfig("cifar10", root=str(tmp_path)))


def write_folder(root, n_per_class=3, size=6):
    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        for cls in ("b_cat", "a_dog"):
            (root / part / cls).mkdir(parents=True)
            for i in range(n_per_class):
                px = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(px).save(root / part / cls / f"{i}.png")


def test_imagefolder_reads_sorted_classes_and_caches(tmp_path):
    write_folder(tmp_path)
    cfg = DataConfig("imagefolder", root=str(tmp_path), val_size=2)
    d = data_mod.load(cfg)
    assert d.sizes() == {"train": 4, "val": 2, "test": 6} and d.num_classes == 2
    first = np.array(Image.open(tmp_path / "test" / "a_dog" / "0.png")).transpose(2, 0, 1)
    assert torch.equal(d.test_x[0], torch.from_numpy(first)) and d.test_y[0] == 0
    caches = list((tmp_path / ".study-cache").glob("*.npz"))
    assert len(caches) == 2
    again = data_mod.load(cfg)
    assert torch.equal(again.train_x, d.train_x)


def test_imagefolder_without_folders_is_a_data_error(tmp_path):
    with pytest.raises(data_mod.DataError, match="train/<class>"):
        data_mod.load(DataConfig("imagefolder", root=str(tmp_path)))


def test_tiny_imagenet_layout(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for wnid in ["n02", "n01"]:
        (tmp_path / "train" / wnid / "images").mkdir(parents=True)
        for i in range(4):
            px = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(px).save(tmp_path / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
    (tmp_path / "val" / "images").mkdir(parents=True)
    for i, wnid in enumerate(["n01", "n02", "n01"]):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            tmp_path / "val" / "images" / f"val_{i}.JPEG"
        )
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t8\t8")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    d = data_mod.load(DataConfig("tiny_imagenet", root=str(tmp_path), val_size=2))
    assert d.sizes() == {"train": 6, "val": 2, "test": 3}
    assert d.test_y.tolist() == [0, 1, 0]  # n01 sorts first


def norm(device="cpu"):
    return Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), torch.device(device))


def test_normalize_matches_the_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean = torch.tensor([0.5, 0.4, 0.3])[:, None, None]
    std = torch.tensor([0.2, 0.25, 0.3])[:, None, None]
    torch.testing.assert_close(norm()(x), (x.float() / 255 - mean) / std)


def test_batches_same_seed_same_batches_and_reshuffle():
    x = torch.randint(0, 256, (70, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(70)

    def epoch(b):
        return [(xb.clone(), yb.clone()) for xb, yb in b]

    a = Batches(x, y, 16, norm(), pad=2, flip=True, seed=4)
    b = Batches(x, y, 16, norm(), pad=2, flip=True, seed=4)
    ea, eb = epoch(a), epoch(b)
    assert len(ea) == len(a) == 5
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(ea, eb, strict=True)
    )
    assert sorted(torch.cat([yb for _, yb in ea]).tolist()) == list(range(70))
    assert not torch.equal(torch.cat([yb for _, yb in epoch(a)]), torch.cat([yb for _, yb in ea]))


def test_random_crop_is_a_zero_padded_window():
    x = torch.randint(1, 256, (32, 3, 6, 6), dtype=torch.uint8)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(32):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) > 5


def test_flip_happens_about_half_the_time():
    x = torch.randint(0, 256, (400, 1, 2, 2), dtype=torch.uint8)
    x[:, :, :, 0] = 0
    x[:, :, :, 1] = 255
    b = Batches(
        x, torch.zeros(400, dtype=torch.long), 400, Normalize((0.0,), (1.0,), "cpu"), flip=True
    )
    ((xb, _),) = list(b)
    flipped = (xb[:, 0, 0, 0] > 0.5).float().mean().item()
    assert 0.4 < flipped < 0.6


def test_eval_batches_are_never_augmented():
    x = torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8)
    out = torch.cat(list(eval_batches(x, 7, norm())))
    torch.testing.assert_close(out, norm()(x))
