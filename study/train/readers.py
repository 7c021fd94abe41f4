"""Readers of the registered datasets (docs/protocol.md, "Data"), each returning uint8 NCHW arrays.

- cifar10, cifar100, svhn: torchvision's files (`dataset.download: true` fetches them).
- tiny_imagenet: the official layout (train/<wnid>/images, val/images + val_annotations.txt);
  the official val images are the test split, and a seeded 10,000 of the 100,000 training
  images are held out as validation (the reference code has no Tiny-ImageNet split).
- imagefolder: any root with train/<class>/ and test/<class>/ image folders of one image size.
- digits: scikit-learn's bundled 8×8 digits (offline); a fixed 360 images are the test split.
- fake: torchvision's FakeData, sized by the config (tests).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from study.train.data import CACHE_HOME, DataError, DatasetSpec, RawData, register

if TYPE_CHECKING:  # annotations only: the registries never import study.train.config
    from study.train.config import DataConfig

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _torchvision(cls_name: str, parts: tuple[dict, dict], folder: str):
    """A reader for a torchvision dataset class whose two parts are built with `parts` kwargs."""

    def read(cfg: DataConfig, root: Path) -> RawData:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        try:
            train, test = (cls(str(root), download=cfg.download, **kw) for kw in parts)
        except Exception as e:  # torchvision raises RuntimeError, URLError, OSError…
            hint = "" if cfg.download else "; set dataset.download=true where the internet is"
            raise DataError(
                f"{cfg.name} not found under {root} (expects {root / folder}){hint}; "
                f"or point dataset.root at a copy ({type(e).__name__})"
            ) from None
        return RawData(*_nchw(train), *_nchw(test))

    return read


def _nchw(ds) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(ds.data, dtype=np.uint8)
    if x.shape[-1] == 3:  # CIFAR stores NHWC, SVHN NCHW
        x = x.transpose(0, 3, 1, 2)
    labels = getattr(ds, "targets", None)
    labels = ds.labels if labels is None else labels
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


def _read_digits(cfg: DataConfig, root: Path) -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255 / 16)).clip(0, 255).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(12345).permutation(len(y))  # fixed: the test split never moves
    test, train = perm[:360], perm[360:]
    return RawData(x[train], y[train], x[test], y[test])


def _read_fake(cfg: DataConfig, root: Path) -> RawData:
    from torchvision.datasets import FakeData

    n_train = (cfg.train_size or 1000) + (cfg.val_size if cfg.val_size is not None else 200)
    n_test = cfg.test_size or 300

    def make(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
        ds = FakeData(n, image_size=(3, 32, 32), num_classes=10, random_offset=offset)
        images = np.stack([np.asarray(ds[i][0]) for i in range(n)]).transpose(0, 3, 1, 2)
        labels = np.array([int(ds[i][1]) for i in range(n)], dtype=np.int64)
        return np.ascontiguousarray(images), labels

    return RawData(*make(n_train, 0), *make(n_test, 10**6))


def _class_files(folder: Path) -> list[tuple[Path, int]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    return [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((folder / name).rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]


def _read_imagefolder(cfg: DataConfig, root: Path) -> RawData:
    parts = [root / "train", root / "test"]
    if not all(p.is_dir() for p in parts):
        raise DataError(
            f"imagefolder needs {parts[0]}/<class>/ and {parts[1]}/<class>/ image folders "
            "(set dataset.root)"
        )
    return RawData(
        *_decode(root, "train", _class_files(parts[0])),
        *_decode(root, "test", _class_files(parts[1])),
    )


def _read_tiny_imagenet(cfg: DataConfig, root: Path) -> RawData:
    annotations = root / "val" / "val_annotations.txt"
    if not (root / "train").is_dir() or not annotations.is_file():
        raise DataError(
            f"tiny_imagenet not found under {root}: expects train/<wnid>/images/*.JPEG and "
            "val/images + val/val_annotations.txt (unzip tiny-imagenet-200.zip; set dataset.root)"
        )
    wnids = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    label = {w: i for i, w in enumerate(wnids)}
    train = _class_files(root / "train")
    val = [
        (root / "val" / "images" / fields[0], label[fields[1]])
        for fields in (line.split("\t") for line in annotations.read_text().splitlines() if line)
    ]
    return RawData(*_decode(root, "train", train), *_decode(root, "test", val))


def _cache_file(root: Path, part: str, files: list[tuple[Path, int]]) -> Path:
    """Decoded-cache path keyed by the files' names, sizes, mtimes and labels."""
    h = hashlib.sha1()
    for path, lab in files:
        st = path.stat()
        h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}|{lab}\n".encode())
    base = root / ".study-cache"
    if not os.access(root, os.W_OK):
        base = CACHE_HOME / "decoded" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return base / f"{part}-{h.hexdigest()[:16]}.npz"


def _decode(root: Path, part: str, files: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Decode image files once into uint8 NCHW, cached as .npz for the next load. Any number
    of processes (or nodes on a shared filesystem) may decode at once: each writes its own
    temporary file and renames it into place atomically; the last rename wins, and every
    version is the same arrays. A corrupt image is named, with why, in one line."""
    if not files:
        raise DataError(f"no images found for the {part} split under {root}")
    cache = _cache_file(root, part, files)
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    from PIL import Image
    from tqdm import tqdm

    images = []
    bar = tqdm(files, desc=f"decoding {part} images", unit="img", mininterval=2, disable=None)
    for path, _ in bar:
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"cannot decode image {path}: {why}") from None
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images under {root}/{part} differ in size {sorted(shapes)[:3]}…")
    x = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))
    y = np.array([lab for _, lab in files], dtype=np.int64)
    tmp = cache.parent / f".{cache.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp.npz"
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, x=x, y=y)
        os.replace(tmp, cache)
    except OSError:  # no cache this time (a full or read-only disk): the arrays are decoded
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return x, y


def _read_cache(cache: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when there is no readable cache (decode again)."""
    try:
        with np.load(cache) as z:
            return z["x"], z["y"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent or damaged
        return None


CIFAR_PARTS = ({"train": True}, {"train": False})
SVHN_PARTS = ({"split": "train"}, {"split": "test"})
register(
    "cifar10",
    DatasetSpec(
        _torchvision("CIFAR10", CIFAR_PARTS, "cifar-10-batches-py"),
        10,
        *IMAGENET,
        pad=4,
        flip=True,
        val_size=5000,
    ),
)
register(
    "cifar100",
    DatasetSpec(
        _torchvision("CIFAR100", CIFAR_PARTS, "cifar-100-python"),
        100,
        (0.507, 0.487, 0.441),
        (0.267, 0.256, 0.276),
        pad=4,
        flip=True,
        val_size=5000,
    ),
)
register(
    "svhn",
    DatasetSpec(
        _torchvision("SVHN", SVHN_PARTS, "train_32x32.mat"),
        10,
        (0.5,) * 3,
        (0.5,) * 3,
        pad=0,
        flip=False,
        val_size=5000,
    ),
)
register(
    "tiny_imagenet",
    DatasetSpec(_read_tiny_imagenet, 200, None, None, pad=4, flip=True, val_size=10000),
)
register(
    "imagefolder", DatasetSpec(_read_imagefolder, None, None, None, pad=4, flip=True, val_size=5000)
)
register("digits", DatasetSpec(_read_digits, 10, None, None, pad=0, flip=False, val_size=300))
register(
    "fake", DatasetSpec(_read_fake, 10, (0.5,) * 3, (0.5,) * 3, pad=4, flip=True, val_size=200)
)
