"""Where and how a trial computes, decided once: the device, the autocast dtype, TF32, the
memory format of image batches, torch.compile, CPU threads (RuntimeConfig, docs/study.md
"Precision"). `Runtime.build` resolves a RuntimeConfig; the engine and the trial take the one
object instead of a device and flags on every call."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from study.errors import ConfigError
from study.train.config import RuntimeConfig


def resolve_device(rt: RuntimeConfig) -> torch.device:
    """The trial's device; asking for CUDA where there is none is a user error."""
    if rt.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(rt.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={rt.device} but torch sees no CUDA device; use auto/cpu")
    return device


@dataclass(frozen=True)
class Runtime:
    device: torch.device  # where the model, the data and every batch live
    dtype: torch.dtype | None  # autocast dtype (bf16 under runtime.bf16); None: fp32 throughout
    tf32: bool  # TF32 matmuls and cuDNN convolutions (only ever on CUDA)
    channels_last: bool  # image batches and the model in channels_last memory format
    compile: bool  # torch.compile each model stage (study.train.models.compile_stages)
    threads: int | None  # torch CPU threads; None: torch's default

    @classmethod
    def build(cls, rt: RuntimeConfig, images: bool = True) -> Runtime:
        """The runtime of `rt`; `images`: the inputs are 4-D (channels_last applies)."""
        device = resolve_device(rt)
        return cls(
            device=device,
            dtype=torch.bfloat16 if rt.bf16 else None,
            tf32=rt.tf32 and device.type == "cuda",
            channels_last=rt.channels_last and images,
            compile=rt.compile,
            threads=rt.threads,
        )

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply(self) -> None:
        """Set the process-wide flags: threads, and TF32 on or off (both, every trial, so a
        reused Ray worker never inherits a previous trial's; off is stricter than torch's own
        default, which lets cuDNN convolutions use TF32)."""
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to `dtype` on the device (CUDA or CPU); a no-op in fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def cpu(bf16: bool = False) -> Runtime:
    """A CPU runtime (tests and benchmarks): fp32, or bf16 autocast."""
    return Runtime.build(RuntimeConfig(device="cpu", bf16=bf16))
