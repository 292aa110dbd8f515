"""Device, mixed precision (AMP) and ``torch.compile`` selection: one code path for CPU and GPU.

The training and inference code asks :func:`select` once and then uses the
returned :class:`Accel` everywhere::

    accel = select(device)                 # "auto": bf16 autocast on CUDA, off on CPU; compile opt-in
    net = accel.maybe_compile(module)
    scaler = accel.grad_scaler()           # loss scaling, enabled for fp16 only
    x = to_device(batch, accel.device, torch.float32)   # pinned + non-blocking on CUDA
    with accel.autocast():
        pred = net(x)
    loss = loss_fn(pred.float(), y)        # losses and reductions stay in float32
    scaler.scale(loss).backward(); scaler.step(opt); scaler.update()

Rules ("auto", the default)
---------------------------
* CUDA: bf16 autocast when the GPU supports bf16 (Ampere and newer: A100,
  H100/H200, L4, RTX 30xx+), else no autocast (fp16 is available with
  ``amp="fp16"``: training then scales the loss with a ``GradScaler``, see
  :meth:`Accel.grad_scaler`); TF32 matmuls allowed
  (``torch.set_float32_matmul_precision("high")``).
* ``torch.compile`` is OPT-IN (``compile="on"`` or ``BRAINVIZ_COMPILE=on``), on
  every device: its speed-up on this model has not been measured on a GPU (none
  was available when the GPU path was written), and compiling costs a warm-up of
  tens of seconds plus recompiles for every new batch shape, which can outweigh
  the gain on short runs. Measure with ``python -m bench --only ue`` on your GPU
  (``BRAINVIZ_COMPILE=on`` vs ``off``) before turning it on.
* CPU (and MPS): autocast off. Plain float32 eager, bitwise reproducible.

Overrides: the arguments ``amp`` ("auto" | "off" | "bf16" | "fp16") and
``compile`` ("auto" | "off" | "on"), or the environment variables
``BRAINVIZ_AMP`` / ``BRAINVIZ_COMPILE`` (same values; the argument wins when it
is not "auto"). Forcing ``amp="bf16"`` or ``"fp16"`` on CPU is allowed (CPU
autocast supports both in torch 2.13; slow on most CPUs): the tests run the
Universal Encoder's training, transfer and prediction that way.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from .errors import BrainVizDataError

__all__ = ["Accel", "select", "resolve_device", "amp_dtype", "compile_enabled", "to_device", "AMP_CHOICES",
           "COMPILE_CHOICES"]

AMP_CHOICES = ("auto", "off", "bf16", "fp16")
COMPILE_CHOICES = ("auto", "off", "on")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = None, *, strict: bool = False) -> torch.device:
    """The one device choice of BrainViz: ``None`` (or ``"auto"``) -> ``cuda`` (the current CUDA
    device) when available, else ``cpu``; a name or ``torch.device`` is used as given.

    ``strict=True``: raise :class:`~brainviz.errors.BrainVizDataError` when CUDA is asked for
    but not available (feature extraction, live prediction) instead of failing later.

    Under torchrun with NCCL, call :func:`brainviz.ddp.init_distributed`
    first: it sets the current CUDA device to ``LOCAL_RANK``.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise BrainVizDataError("device", f"cannot use {device!r} ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        if strict:
            raise BrainVizDataError("device", f"{device} requested but CUDA is not available (use device=None or 'cpu')")
        return device  # not checked here: the first tensor op on it fails
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _choice(value: str | bool | None, env: str, choices: tuple[str, ...]) -> str:
    if value is True:
        value = "on" if "on" in choices else "bf16"
    elif value is False:
        value = "off"
    value = "auto" if value is None else str(value).lower()
    if value == "auto":
        value = os.environ.get(env, "auto").strip().lower() or "auto"
    if value in ("0", "false", "no", "none"):
        value = "off"
    if value in ("1", "true", "yes"):
        value = "on" if "on" in choices else "bf16"
    if value not in choices:
        raise ValueError(f"{env}: expected one of {choices}, got {value!r}")
    return value


def _cuda_bf16_ok(device: torch.device) -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except Exception:  # pragma: no cover - depends on the GPU / driver
        return False


def amp_dtype(device: str | torch.device | None = None, amp: str | bool | None = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` (None = no autocast). See the module docstring."""
    dev = resolve_device(device)
    choice = _choice(amp, "BRAINVIZ_AMP", AMP_CHOICES)
    if choice == "off":
        return None
    if choice == "auto":
        return torch.bfloat16 if dev.type == "cuda" and _cuda_bf16_ok(dev) else None
    return _DTYPES[choice]


def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def compile_enabled(device: str | torch.device | None = None, compile: str | bool | None = "auto") -> bool:
    """Whether to ``torch.compile`` models on ``device``. See the module docstring."""
    dev = resolve_device(device)
    choice = _choice(compile, "BRAINVIZ_COMPILE", COMPILE_CHOICES)
    if choice == "off" or not hasattr(torch, "compile"):
        return False
    if choice == "on":
        if dev.type == "cuda" and not _has_triton():
            warnings.warn("torch.compile on CUDA needs Triton, which is not installed; running eagerly",
                          RuntimeWarning, stacklevel=2)
            return False
        return True
    return False  # "auto": opt-in until measured faster (see the module docstring)


def to_device(t: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Copy a host tensor to ``device`` (then cast to ``dtype`` there, so a float16 batch crosses
    the bus at half the bytes). On CUDA the copy goes from pinned memory and does not block the
    host (the caching host allocator keeps the pinned buffer alive until the copy is done); on
    the CPU it is a plain ``.to`` (no copy when nothing changes)."""
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory().to(device, non_blocking=True)
    else:
        t = t.to(device)
    return t if dtype is None else t.to(dtype)


@dataclass(frozen=True)
class Accel:
    """The chosen execution settings for one device.

    Attributes
    ----------
    device : torch.device
    amp_dtype : torch.bfloat16 / torch.float16 under autocast, None for plain float32.
    compile : whether :meth:`maybe_compile` compiles.
    tf32 : whether float32 matmuls may use TF32 (CUDA only).
    """

    device: torch.device
    amp_dtype: torch.dtype | None = None
    compile: bool = False
    tf32: bool = False

    @property
    def amp(self) -> bool:
        return self.amp_dtype is not None

    def autocast(self):
        """``torch.autocast`` context with :attr:`amp_dtype`, or a no-op context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> "torch.amp.GradScaler":
        """A ``torch.amp.GradScaler`` for training: enabled under fp16 autocast (its small exponent
        range underflows small gradients without loss scaling), a pass-through otherwise (bf16 has
        float32's exponent range and needs none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def maybe_compile(self, module: Any, **kwargs) -> Any:
        """``torch.compile(module)`` when :attr:`compile`, else ``module`` itself.

        The compiled wrapper shares the module's parameters (state dicts and
        optimizers keep working on the original module). ``kwargs`` go to
        ``torch.compile`` (default ``dynamic=None``: shapes that change between
        calls, e.g. the last, smaller voxel chunk, recompile once as dynamic).
        """
        if not self.compile:
            return module
        try:
            return torch.compile(module, **kwargs)
        except Exception as exc:  # pragma: no cover - backend specific
            warnings.warn(f"torch.compile unavailable ({exc}); running eagerly", RuntimeWarning, stacklevel=2)
            return module

    def apply_global(self) -> None:
        """Process-wide switches that go with the settings (TF32 on CUDA)."""
        if self.tf32:
            torch.set_float32_matmul_precision("high")

    def describe(self) -> dict[str, str | bool]:
        """A small dict for logs, benchmarks and checkpoints."""
        name = str(self.device)
        if self.device.type == "cuda":
            try:
                name += f" ({torch.cuda.get_device_name(self.device)})"
            except Exception:  # pragma: no cover
                pass
        return {"device": name, "amp": str(self.amp_dtype).replace("torch.", "") if self.amp else "off",
                "compile": self.compile, "tf32": self.tf32}


def select(device: str | torch.device | None = None, amp: str | bool | None = "auto",
           compile: str | bool | None = "auto") -> Accel:
    """Pick device, autocast dtype and compilation (see the module docstring for the rules).

    Parameters
    ----------
    device : None (cuda if available, else cpu), a string or a torch.device.
    amp : "auto" | "off" | "bf16" | "fp16" (or True/False).
    compile : "auto" | "off" | "on" (or True/False).
    """
    dev = resolve_device(device)
    return Accel(device=dev, amp_dtype=amp_dtype(dev, amp), compile=compile_enabled(dev, compile),
                 tf32=dev.type == "cuda")
