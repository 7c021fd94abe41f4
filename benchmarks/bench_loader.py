"""Batch pipeline vs torchvision's DataLoader + PIL transforms (issue 2; target ≥ 5× faster).

Both produce the same thing: shuffled batches of 128 CIFAR-10 images, zero-padded random crop 32
(padding 4), horizontal flip, normalised, as float tensors — one full pass over 10,000 images.
The DataLoader is timed at num_workers 0, 1 and 2 and its best is the baseline.
Run: .venv/bin/python benchmarks/bench_loader.py
"""

from __future__ import annotations

import torch
import torchvision.transforms as T
from common import best_of, cifar_images
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from study.train.loader import Batches, Normalize

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PILDataset(Dataset):
    def __init__(self, images, labels):
        self.images = [Image.fromarray(im) for im in images]
        self.labels = labels.tolist()
        self.transform = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(MEAN, STD),
            ]
        )

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def drain(batches) -> int:
    return sum(len(y) for _, y in batches)


def main() -> None:
    images, labels, source = cifar_images()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    ours = Batches(
        x,
        torch.from_numpy(labels),
        128,
        Normalize(MEAN, STD, torch.device("cpu")),
        pad=4,
        flip=True,
    )
    t_ours = best_of(lambda: drain(ours))
    ds = PILDataset(images, labels)
    baseline = {}
    for workers in (0, 1, 2):
        loader = DataLoader(
            ds, batch_size=128, shuffle=True, num_workers=workers, persistent_workers=workers > 0
        )
        drain(loader)  # start workers once
        baseline[workers] = best_of(lambda loader=loader: drain(loader))
    best_workers = min(baseline, key=baseline.get)
    print(
        f"data: {len(labels):,} images ({source}), batch 128, crop+flip+normalise, CPU threads "
        f"{torch.get_num_threads()}"
    )
    for workers, t in baseline.items():
        print(f"  DataLoader+PIL num_workers={workers}: {t:.3f} s/pass")
    print(f"  study.train.loader.Batches:             {t_ours:.3f} s/pass")
    print(
        f"speed-up vs best DataLoader (num_workers={best_workers}): "
        f"{baseline[best_workers] / t_ours:.1f}x (target >= 5x)"
    )


if __name__ == "__main__":
    main()
