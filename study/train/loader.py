"""Batches on the trial's device, airbench-style: the split is one uint8 tensor there, a batch is
an index into it, and the paper's augmentation (zero-padded random crop + horizontal flip,
docs/protocol.md) runs vectorised over the batch before normalisation. No PIL, no worker processes.

All randomness (the per-epoch order, crop offsets, flips) comes from one seeded CPU generator
whose state is checkpointed, so the same seed gives identical batches on any device. Mixup-SC
fetches its partners from the same `TrainingImages` with its own checkpointed generator.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F


class Normalize:
    """uint8 images → float (x/255 − mean)/std, as one multiply-add, in a memory format."""

    def __init__(self, mean, std, device: torch.device, channels_last: bool = False):
        std_t = torch.tensor(std, dtype=torch.float32, device=device)[:, None, None]
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device)[:, None, None]
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        return torch.addcmul(self.shift, x.float(), self.scale)


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` and crop back to the input size at per-image random offsets."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b), generator=gen).to(x.device, non_blocking=True)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability ½."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


class TrainingImages:
    """The training split on the device, fetched by index with the paper's augmentation.

    Batches fetch shuffled indices from it; Mixup-SC fetches same-class partners from it, so a
    partner is cropped, flipped and normalised exactly like a batch sample.
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, normalize: Normalize, *, pad: int, flip: bool
    ):
        self.x, self.y = x, y
        self.normalize = normalize
        self.pad, self.flip = pad, flip
        self._by_class: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def fetch(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Images `idx` (on the device), augmented with draws from `gen`, normalised."""
        xb = self.x[idx]
        if self.pad:
            xb = random_crop(xb, self.pad, gen)
        if self.flip:
            xb = random_flip(xb, gen)
        return self.normalize(xb)

    def same_class(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """For each label of `y` (all of them training labels), the index of a training image of
        that class drawn uniformly (with replacement), vectorised and without a host sync."""
        if self._by_class is None:  # once per trial: indices grouped by class, offsets, counts
            counts = torch.bincount(self.y)
            self._by_class = (torch.argsort(self.y, stable=True), counts.cumsum(0) - counts, counts)
        order, starts, counts = self._by_class
        u = torch.rand(len(y), generator=gen, dtype=torch.float64).to(y.device, non_blocking=True)
        n = counts[y]
        return order[starts[y] + torch.minimum((u * n).long(), n - 1)]


class Batches:
    """Shuffled, augmented, normalised training batches; reshuffled on every iteration."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        normalize: Normalize,
        *,
        pad: int = 0,
        flip: bool = False,
        seed: int = 0,
    ):
        self.images = TrainingImages(x, y, normalize, pad=pad, flip=flip)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.images), generator=self.gen).to(self.images.x.device)
        for idx in order.split(self.batch_size):
            yield self.images.fetch(idx, self.gen), self.images.y[idx]

    def state_dict(self) -> dict:
        return {"generator": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["generator"])


def eval_batches(x: torch.Tensor, batch_size: int, normalize: Normalize) -> Iterator[torch.Tensor]:
    """Un-augmented, normalised batches in order (validation and test are never augmented)."""
    for xb in x.split(batch_size):
        yield normalize(xb)
