"""Universal Brain Encoder estimator (report 004): single-subject, joint and transfer training.

The network is :class:`~brainviz.encoders.universal_module.UniversalEncoderModule`
(see its docstring for the architecture and shapes). This module wraps it in a
scikit-learn-style estimator:

>>> ue = UniversalEncoder(n_epochs=4, seed=0)
>>> ue.fit({"subj01": (X1, Y1), "subj05": (X5, Y5)})      # joint, different images / voxel counts
>>> Yhat = ue.predict(X_test, "subj01")                    # (n_images, n_voxels)
>>> ue.transfer("subj02", X2, Y2)                          # new subject: only its embeddings learn
>>> ue.save("ue.pt"); ue2 = UniversalEncoder.load("ue.pt")

Inputs: ``X`` is a FeatureSet-like object (``.layers`` (n_images, L, P, C_in),
float16 memmap allowed) or a 4-D array of that shape; ``Y`` is (n_images,
n_voxels) float responses. The backbone is frozen: features come from the cache.

Training (report 004 sec. 3.2): batches of ``batch_images`` (32, as the report)
images of one subject; each image gets its own random subset of about
``batch_voxels`` of that subject's voxels (the step's voxels are a random
permutation cut into G = round(V / batch_voxels) disjoint groups dealt to the
images round robin, so a voxel's image-independent terms are computed once per
step). Loss ``alpha * MSE + (1 - alpha) * (1 - cos)`` with the cosine across the
sampled voxels of each image. Adam with ``lr`` 1e-3 for the shared weights, as
the report. Subjects take turns batch by batch (shuffled), so joint training needs
no shared images and no equal voxel counts. Keys: the input features projected
to E at full rank (see :mod:`.universal_module`).

Training length: ``voxel_updates`` (150) is the number of steps in which every voxel
embedding gets a gradient (expected value, :meth:`UniversalEncoder.updates_per_epoch`), and
``min_epochs`` (10) the fewest passes over every subject's training images, so training grows
with the data in voxels and in images: epochs = max(``min_epochs``, ceil(``voxel_updates`` /
updates per epoch)); ``n_epochs`` overrides both. On the demo brain that is 10 epochs; at NSD size
10 passes (~2,300 updates per voxel). Transfer uses ``transfer_updates`` (75) alone (only the new
subject's embeddings learn). :attr:`UniversalEncoder.embedding_cosine_` holds, per subject, the
median cosine between each voxel's final and initial embedding (near 1 = still the random start).

Departures from the report, for the small-data CPU regime: ``batch_voxels`` 1000 per image (report:
5000), ``embed_lr`` 2e-2 for the embeddings (report: 1e-3 for everything), embeddings initialised
N(0, 0.01^2) (``embed_init_std``; the report gives none), ``proj_dim`` C = 32 value channels (report:
not stated; 128 in :meth:`UniversalConfig.report`). Every one of these settings, and the ones tried and
not adopted, is measured in docs/DECISIONS.md ("Universal Encoder settings").

Backbone: L = 5 layers of EfficientNet-Lite0 instead of
DINOv2 ViT-g/14 by default (see :mod:`brainviz.features.efficientnet` for the criterion;
``--backbone dinov2:vit_giant_patch14 --weights FILE`` gives the report's backbone,
:mod:`brainviz.features.dinov2`).

Determinism: the parameter init comes from ``seed``; the batch schedule of
epoch ``k`` from ``(seed, k)``; new subjects' embeddings from ``(seed, name)``.
So a run resumed from a checkpoint gives exactly the same model as an
uninterrupted one.

Distributed: when ``torch.distributed.is_initialized()``, the network is
wrapped in ``DistributedDataParallel`` and every rank follows the same global
batch schedule but processes only its shard of each batch's images
(``images[rank::world_size]``); each rank's loss is weighted by its share of
the batch, so DDP's gradient average is the gradient of the whole batch (the
single-process trajectory, up to rounding). Validation runs
identically on every rank; checkpoints are written by rank 0 only.

Out of core: features or responses given as memory maps or lazy arrays (a cache
``FeatureSet``'s float16 layers, :class:`~brainviz.data.streaming.RowConcat` /
``RowSubset`` responses) are not loaded: every step reads the rows it trains on (in a
distributed job only this rank's share of the batch), the input statistics are summed
over each rank's share of the rows, and responses are checked for NaN as they are read.
In-memory arrays are used as before; both give the same model bit for bit.

Not built: the report's LoRA adaptation of the backbone's attention
out-projection (needs the backbone in the training loop, i.e. a GPU and no
feature cache); the backbone here is frozen.
"""
from __future__ import annotations

import copy
import io
import time
import zlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..errors import BrainVizDataError
from ..safe_load import safe_message
from ..gpu import AMP_CHOICES, COMPILE_CHOICES, resolve_device, select, to_device
from ..jobs import check_cancelled, report
from ._inputs import as_layers, as_responses
from ..ddp import dist_info
from .universal_module import (UniversalEncoderModule, VoxelTerms, channel_stats_from_sums, layer_channel_sums,
                               ue_loss)

__all__ = ["UniversalConfig", "UniversalEncoder", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "brainviz.universal_encoder/2"
#: Older formats and why they cannot be loaded (format 1: keys from the C projected channels).
_OLD_FORMATS = {"brainviz.universal_encoder/1": "keys of rank <= C made from the projected values; this "
                "version projects the input features to E at full rank"}


@dataclass
class UniversalConfig:
    """Hyper-parameters of the Universal Encoder (defaults: the fast CPU configuration).

    Architecture: ``embed_dim`` E (256, as the report), ``proj_dim`` C (per-layer
    projected channels), ``mlp_hidden`` H (default C), ``embed_init_std`` (std of
    new voxel embeddings), ``pos_init_std`` (std of the initial positional encodings).
    Training: ``n_epochs`` (None = the larger of ``min_epochs`` passes over the images and
    enough passes for ``voxel_updates`` updates of every voxel), ``batch_images`` (report: 32), ``batch_voxels``
    (report: 5000), ``voxel_fraction`` (share of each subject's voxels visited per
    image per epoch), ``lr`` (shared weights, 1e-3 as the report), ``attn_lr``
    (positional encodings, query and key weights; None = ``lr``), ``embed_lr``
    (voxel embeddings), ``loss_alpha`` (weight of the MSE term), ``weight_decay``.
    Transfer: ``transfer_epochs``, ``transfer_lr`` (embeddings only).
    Validation / early stopping: ``val_fraction`` of each subject's training
    images held out (0 = none), ``patience`` epochs without improvement of the
    validation score (mean over subjects of the median voxel Pearson r) before
    stopping (None = never stop early); the best epoch's weights are kept.
    Runtime: ``seed``, ``device`` (None = cuda if available else cpu),
    ``progress`` (tqdm bars), ``predict_batch_images``, ``predict_batch_voxels`` (16 x 8192:
    969 images x 5,208 voxels predicted in 6-8 s on 2 CPU cores, 13-14 s with 64 x 4096),
    ``amp`` / ``compile`` (:func:`brainviz.gpu.select`: amp "auto" = bf16 autocast on CUDA
    (when the GPU has bf16), off on CPU; "off" / "bf16" / "fp16" (training under fp16 scales
    the loss with a GradScaler); compile "auto" = off (opt-in: "on"; not measured faster yet)).
    """

    embed_dim: int = 256
    proj_dim: int = 32
    mlp_hidden: int | None = None
    embed_init_std: float = 0.01
    pos_init_std: float = 1.0
    n_epochs: int | None = None
    voxel_updates: int = 150
    min_epochs: int = 10
    batch_images: int = 32
    batch_voxels: int = 1000
    lr: float = 1e-3
    attn_lr: float | None = None
    embed_lr: float = 2e-2
    loss_alpha: float = 0.5
    weight_decay: float = 0.0
    transfer_epochs: int | None = None
    transfer_updates: int = 75
    transfer_lr: float = 2e-2
    val_fraction: float = 0.0
    patience: int | None = None
    seed: int = 0
    device: str | None = None
    progress: bool = True
    predict_batch_images: int = 16
    predict_batch_voxels: int = 8192
    amp: str = "auto"
    compile: str = "auto"

    @classmethod
    def report(cls, **overrides) -> "UniversalConfig":
        """The report's GPU-scale settings (5000 voxels per image, one lr 1e-3)."""
        base = dict(proj_dim=128, batch_images=32, batch_voxels=5000, embed_lr=1e-3, transfer_lr=1e-3,
                    n_epochs=50, transfer_epochs=50, loss_alpha=0.5)
        base.update(overrides)
        return cls(**base)

    def validate(self) -> None:
        for f in fields(self):  # inf / nan (JSON's Infinity, NaN) pass every comparison below
            v = getattr(self, f.name)
            if isinstance(v, float) and not np.isfinite(v):
                raise BrainVizDataError(f"config.{f.name}", f"must be a finite number, got {v!r}")
        checks = {
            "embed_dim": self.embed_dim >= 1, "proj_dim": self.proj_dim >= 1,
            "mlp_hidden": self.mlp_hidden is None or self.mlp_hidden >= 1,
            "n_epochs": self.n_epochs is None or self.n_epochs >= 0, "batch_images": self.batch_images >= 1,
            "batch_voxels": self.batch_voxels >= 1,
            "voxel_updates": self.voxel_updates >= 1, "transfer_updates": self.transfer_updates >= 1,
            "min_epochs": self.min_epochs >= 0,
            "lr": self.lr > 0, "embed_lr": self.embed_lr > 0, "attn_lr": self.attn_lr is None or self.attn_lr > 0,
            "loss_alpha": 0.0 <= self.loss_alpha <= 1.0, "weight_decay": self.weight_decay >= 0,
            "transfer_epochs": self.transfer_epochs is None or self.transfer_epochs >= 0, "transfer_lr": self.transfer_lr > 0,
            "val_fraction": 0.0 <= self.val_fraction < 1.0,
            "patience": self.patience is None or self.patience >= 1,
            "embed_init_std": self.embed_init_std > 0, "pos_init_std": self.pos_init_std >= 0,
            "amp": self.amp in AMP_CHOICES, "compile": self.compile in COMPILE_CHOICES,
        }
        for name, ok in checks.items():
            if not ok:
                raise BrainVizDataError(f"config.{name}", f"invalid value {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "UniversalConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---------------------------------------------------------------------------- helpers

def _name_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


@dataclass
class _Subject:
    """One subject's training data on the host: tensors (in memory, not copied per batch) or lazy arrays
    (memory maps, :class:`~brainviz.data.streaming.RowConcat` / ``RowSubset``) of which only the rows a
    step needs are read (:meth:`x_rows`, :meth:`y_rows`)."""

    name: str
    X: Any                   # (n, L, P, C_in) float16/float32: torch.Tensor or lazy array
    Y: Any                   # (n, V) float32: torch.Tensor or lazy array
    train_idx: np.ndarray    # image rows used for training
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    x_bytes: int = 0         # bytes of features and responses read so far (rows x row bytes)
    y_bytes: int = 0

    @property
    def n_voxels(self) -> int:
        return int(self.Y.shape[1])

    def x_rows(self, idx: np.ndarray) -> torch.Tensor:
        """(len(idx), L, P, C_in) features of rows ``idx`` (float16/float32, on the host)."""
        if isinstance(self.X, torch.Tensor):
            out = self.X[idx]
        else:
            from ..data.streaming import read_rows

            a = np.ascontiguousarray(read_rows(self.X, np.asarray(idx)))
            out = torch.from_numpy(a if a.dtype in (np.float16, np.float32) else a.astype(np.float32))
        self.x_bytes += out.numel() * out.element_size()
        return out

    def y_rows(self, idx: np.ndarray) -> torch.Tensor:
        """(len(idx), V) float32 responses of rows ``idx``; lazy rows are checked for NaN / inf as read."""
        if isinstance(self.Y, torch.Tensor):
            out = self.Y[idx]
        else:
            from ..data.streaming import read_rows

            a = np.ascontiguousarray(read_rows(self.Y, np.asarray(idx)), dtype=np.float32)
            if not np.isfinite(a).all():
                raise BrainVizDataError(f"data[{self.name!r}].Y", "contains NaN or infinite values")
            out = torch.from_numpy(a)
        self.y_bytes += out.numel() * out.element_size()
        return out


def _lazy(a) -> bool:
    """True for data to be read row by row as training needs it (a memory map, or an array-like that is
    not an in-memory array: RowConcat, RowSubset); in-memory arrays are used as they are."""
    return isinstance(a, np.memmap) or (hasattr(a, "shape") and not isinstance(a, (np.ndarray, torch.Tensor)))


def _to_tensor(layers) -> torch.Tensor:
    """A CPU tensor over ``layers`` (n, L, P, C) float16/float32. An in-memory array that owns its
    C-contiguous, writeable data (e.g. the pipeline's feature rows) is shared, not copied (the
    estimator never writes to it): no second copy of a subject's features (NSD size: 1.5 GB per
    subject in float16); memmaps, views and read-only arrays are copied. (Training does not copy
    memory maps: it reads the rows of each step from them, :class:`_Subject`.)"""
    arr = np.asarray(layers)
    if arr.dtype not in (np.float16, np.float32):
        return torch.from_numpy(arr.astype(np.float32))
    own = (not isinstance(layers, np.memmap) and arr.flags.owndata and arr.flags.c_contiguous
           and arr.flags.writeable)
    return torch.from_numpy(arr if own else np.array(arr, copy=True))


class UniversalEncoder:
    """Scikit-learn-style estimator around :class:`UniversalEncoderModule`.

    Parameters
    ----------
    config : a :class:`UniversalConfig` (default: the CPU defaults).
    **overrides : any config field, e.g. ``UniversalEncoder(n_epochs=2, seed=1)``.

    Attributes (after fit)
    ----------------------
    module_ : the torch network.
    history_ : list of per-epoch dicts (epoch, loss, val_score, seconds, pairs_per_s).
    transfer_history_ : {subject: list of per-epoch dicts} for transferred subjects.
    input_bytes_read_ : {"features": bytes, "responses": bytes} of training data this process read in
        the last :meth:`fit` (input statistics, training steps, validation; in a distributed job about
        1 / world_size of a one-process fit's: each rank reads only its share of every batch).
    """

    def __init__(self, config: UniversalConfig | None = None, **overrides):
        cfg = copy.deepcopy(config) if config is not None else UniversalConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"UniversalEncoder got an unknown parameter {k!r}")
            setattr(cfg, k, v)
        cfg.validate()
        self.config = cfg
        self.module_: UniversalEncoderModule | None = None
        self.history_: list[dict] = []
        self.transfer_history_: dict[str, list[dict]] = {}
        self._opt_state: dict | None = None
        self._epochs_done = 0
        self._best: dict | None = None
        self._subject_order: list[str] = []
        self._terms_cache: OrderedDict | None = None  # see cache_voxel_terms
        self._terms_max = 0
        self.embedding_cosine_: dict[str, float] = {}
        self.input_bytes_read_: dict[str, int] = {}

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device or None)

    @property
    def subjects(self) -> dict[str, int]:
        """{subject: n_voxels} of every subject with embeddings (trained or transferred)."""
        self._check_fitted()
        return {k: int(v.shape[0]) for k, v in self.module_.embeddings.items()}

    def _check_fitted(self) -> None:
        if self.module_ is None:
            raise BrainVizDataError("UniversalEncoder", "is not fitted; call fit() or load() first")

    def _check_subject(self, subject: str) -> None:
        self._check_fitted()
        if subject not in self.module_.embeddings:
            raise BrainVizDataError("subject", f"unknown subject {subject!r}; known: {sorted(self.module_.embeddings)}")

    # ------------------------------------------------------------------ data
    def _check_layers(self, X, name: str) -> tuple[Any, tuple[int, int, int]]:
        layers, _ = as_layers(X, name)
        shape = tuple(int(s) for s in layers.shape[1:])
        if self.module_ is not None:
            expect = (self.module_.n_layers, self.module_.n_patches, self.module_.in_channels)
            if shape != expect:
                raise BrainVizDataError(name, f"features have (L, P, C) = {shape}, the model expects {expect}")
        return layers, shape

    def _prepare(self, data: Mapping[str, tuple], validation: Mapping[str, tuple] | None,
                 val_fraction: float, seed_key: str) -> tuple[list[_Subject], tuple[int, int, int]]:
        if not isinstance(data, Mapping) or not data:
            raise BrainVizDataError("data", "expected a non-empty {subject: (X_layers, Y)} mapping")
        subjects: list[_Subject] = []
        shape = None
        for name, pair in data.items():
            if not isinstance(name, str) or not name:
                raise BrainVizDataError("data", f"subject names must be non-empty strings, got {name!r}")
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise BrainVizDataError(f"data[{name!r}]", "expected a pair (X_layers, Y)")
            layers, shp = self._check_layers(pair[0], f"data[{name!r}].X")
            if shape is not None and shp != shape:
                raise BrainVizDataError(f"data[{name!r}].X", f"(L, P, C) = {shp} differs from other subjects' {shape}")
            shape = shp
            n = int(layers.shape[0])
            with_val = validation is not None and name in validation
            # memory maps / lazy arrays stay on disk: each step reads only its rows (in a distributed job only
            # this rank's share of the batch); in-memory arrays are used as they are
            lazy_x = _lazy(layers) and not with_val
            lazy_y = _lazy(pair[1]) and not with_val
            Y = as_responses(pair[1], n, f"data[{name!r}].Y", load=not lazy_y)
            X = layers if lazy_x else _to_tensor(layers)
            Yt = Y if lazy_y else torch.from_numpy(Y)
            if with_val:
                vl, _ = self._check_layers(validation[name][0], f"validation[{name!r}].X")
                vY = as_responses(validation[name][1], int(vl.shape[0]), f"validation[{name!r}].Y")
                if vY.shape[1] != Y.shape[1]:
                    raise BrainVizDataError(f"validation[{name!r}].Y", f"has {vY.shape[1]} voxels, training has {Y.shape[1]}")
                X = torch.cat([X, _to_tensor(vl).to(X.dtype)])
                Yt = torch.cat([Yt, torch.from_numpy(vY)])
                train_idx = np.arange(n)
                val_idx = np.arange(n, n + vY.shape[0])
            elif validation is None and val_fraction > 0:
                rng = np.random.default_rng([self.config.seed, zlib.crc32(f"{seed_key}:{name}".encode())])
                perm = rng.permutation(n)
                n_val = int(round(val_fraction * n))
                if n_val < 2 or n - n_val < 2:
                    raise BrainVizDataError(f"data[{name!r}]", f"{n} images are too few for val_fraction={val_fraction}")
                val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            else:
                train_idx, val_idx = np.arange(n), np.zeros(0, dtype=np.int64)
            if len(train_idx) < 1:
                raise BrainVizDataError(f"data[{name!r}]", "has no training images")
            subjects.append(_Subject(name, X, Yt, train_idx, val_idx))
        if validation is not None:
            extra = set(validation) - set(data)
            if extra:
                raise BrainVizDataError("validation", f"subjects {sorted(extra)} are not in the training data")
        return subjects, shape

    # ------------------------------------------------------------------ schedule
    def _schedule(self, subjects: list[_Subject], rng: np.random.Generator, world: int) -> list[tuple]:
        """Global list of steps (subject index, image rows (b,), voxel indices (b, n_vox)), same on every rank.

        Every training image of every subject once per epoch, in batches of ``batch_images``
        images of one subject; each image gets its own random subset of about
        ``batch_voxels`` of its subject's voxels (report 004): the step's voxels are a random
        permutation cut into G = round(V / batch_voxels) disjoint groups of V // G, and the
        images are dealt the groups round robin (so with G >= batch_images every image of the
        step has different voxels, and each voxel's image-independent terms are computed
        once per step). Subjects take turns batch by batch (shuffled).
        """
        units = []
        B = self.config.batch_images
        for si, sd in enumerate(subjects):
            perm = sd.train_idx[rng.permutation(len(sd.train_idx))]
            n_batches = max(1, int(np.ceil(len(perm) / B)))
            batches = np.array_split(perm, n_batches)
            if world > 1:  # every rank needs >= 1 image per batch
                while len(batches) > 1 and len(batches[-1]) < world:
                    batches = batches[:-2] + [np.concatenate(batches[-2:])]
                if len(batches[0]) < world:
                    raise BrainVizDataError(sd.name, f"{len(perm)} training images cannot be shared by {world} ranks")
            for b in batches:
                units.append((si, np.sort(b)))
        order = rng.permutation(len(units))
        steps = []
        for u in order:
            si, imgs = units[u]
            V = subjects[si].n_voxels
            n_groups = max(1, int(round(V / self.config.batch_voxels)))
            nv = V // n_groups
            # a random permutation of the voxels cut into n_groups disjoint groups of nv; each image
            # is dealt one group (round robin over a shuffled image order)
            groups = np.sort(rng.permutation(V)[:n_groups * nv].reshape(n_groups, nv), axis=1)
            assign = rng.permutation(len(imgs)) % n_groups
            steps.append((si, imgs, groups[assign].astype(np.int64)))
        return steps

    def updates_per_epoch(self, n_images: int, n_voxels: int) -> float:
        """Expected number of steps per epoch in which one voxel of a subject with ``n_images``
        training images and ``n_voxels`` voxels is sampled by at least one image (so its
        embedding gets a gradient): sum over batches of min(1, b / G), G voxel groups (:meth:`_schedule`)."""
        B = self.config.batch_images
        n_groups = max(1, int(round(n_voxels / self.config.batch_voxels)))
        sizes = [len(b) for b in np.array_split(np.arange(n_images), max(1, int(np.ceil(n_images / B))))]
        # groups are dealt round robin: a voxel's group gets an image unless the batch has fewer images than groups
        return float(sum(min(1.0, b / n_groups) for b in sizes))

    def epochs_for(self, subjects: Mapping[str, tuple[int, int]], updates: int, n_epochs: int | None,
                   min_epochs: int = 0) -> int:
        """Number of epochs (passes over every subject's training images): ``n_epochs`` when
        given, else the fewest epochs, at least ``min_epochs``, that give every voxel of every
        subject ({name: (n_train_images, n_voxels)}) at least ``updates`` expected embedding
        updates (:meth:`updates_per_epoch`)."""
        if n_epochs is not None:
            return int(n_epochs)
        need = [int(np.ceil(updates / max(1e-9, self.updates_per_epoch(n, v)))) for n, v in subjects.values()]
        return max([1, int(min_epochs)] + need)

    # ------------------------------------------------------------------ training loop
    def _run_epochs(self, subjects: list[_Subject], optimizer: torch.optim.Optimizer, start_epoch: int,
                    n_epochs: int, rng_key: tuple, desc: str, history: list[dict],
                    checkpoint_path: str | Path | None = None, track_best: bool = True,
                    of: int | None = None, scaler: "torch.amp.GradScaler | None" = None) -> None:
        """Epochs ``start_epoch`` .. ``n_epochs - 1`` (of ``of`` in all, for the progress display).

        ``scaler``: the loss scaler to use (kept across calls by :meth:`transfer`, which runs one
        epoch per call); default a new one from :meth:`brainviz.gpu.Accel.grad_scaler`."""
        cfg = self.config
        dev = self.device
        info = dist_info()
        rank, world = info.rank, info.world_size
        module = self.module_
        net: torch.nn.Module = module
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # other subjects' embeddings get no gradient in a step: let DDP look for unused parameters
            n_trainable_emb = sum(p.requires_grad for p in module.embeddings.values())
            net = DDP(module, device_ids=[dev.index] if dev.type == "cuda" else None,
                      find_unused_parameters=n_trainable_emb > 1)
        accel = select(dev, cfg.amp, cfg.compile)  # CPU: float32 eager; CUDA: bf16 autocast (compile opt-in)
        accel.apply_global()
        net = accel.maybe_compile(net)
        if scaler is None:
            scaler = accel.grad_scaler()  # loss scaling under fp16 autocast; a pass-through otherwise
        has_val = any(len(s.val_idx) for s in subjects)
        since_best = 0
        if track_best and self._best is not None and has_val:
            since_best = start_epoch - self._best["epoch"]
        for epoch in range(start_epoch, n_epochs):
            # when run as a job (brainviz.jobs): the epoch, and the fraction of the epochs finished
            report(f"{desc} epoch {epoch + 1}/{of or n_epochs}", done=epoch / (of or n_epochs))
            t0 = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, *rng_key, epoch])
            steps = self._schedule(subjects, rng, world)
            module.train()
            # summed on the device: no host sync per step (MPS has no float64)
            total = torch.zeros((), dtype=torch.float32 if dev.type == "mps" else torch.float64, device=dev)
            n_pairs = 0
            bar = tqdm(steps, desc=f"{desc} epoch {epoch + 1}/{n_epochs}", leave=False,
                       disable=not cfg.progress or rank != 0)
            for si, imgs, vox in bar:
                check_cancelled()  # a stopping run (Ctrl-C, SIGTERM) ends this job thread within a step
                sd = subjects[si]
                local = imgs[rank::world]
                # host -> device: pinned and non-blocking on CUDA, features cast to float32 there
                x = to_device(sd.x_rows(local), dev, torch.float32)
                vl = torch.from_numpy(vox[rank::world])            # (b_local, n_vox) per-image voxels
                y = to_device(torch.gather(sd.y_rows(local), 1, vl), dev)
                vt = to_device(vl, dev)
                with accel.autocast():
                    pred = net(x, sd.name, vt)
                loss = ue_loss(pred.float(), y, cfg.loss_alpha)
                optimizer.zero_grad(set_to_none=True)
                # DDP averages the ranks' gradients; weighting each rank's mean by its share of
                # the batch makes that average the gradient of the whole batch's mean loss
                weighted = loss * (len(local) * world / len(imgs)) if world > 1 else loss
                scaler.scale(weighted).backward()
                scaler.step(optimizer)  # skipped (and the scale lowered) when fp16 gradients overflowed
                scaler.update()
                total += loss.detach() * len(local)
                n_pairs += int(vl.numel())
                if not bar.disable:
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            secs = time.perf_counter() - t0
            n_rows = sum(len(i[rank::world]) for _, i, _ in steps)
            rec = {"epoch": epoch + 1, "loss": float(total) / max(1, n_rows),  # mean batch loss, weighted by images
                   "seconds": secs, "pairs_per_s": n_pairs * world / max(secs, 1e-9)}
            if has_val:
                rec["val_score"] = self._val_score(subjects)
                if track_best:
                    if self._best is None or rec["val_score"] > self._best["score"]:
                        self._best = {"score": rec["val_score"], "epoch": epoch + 1,
                                      "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
                        since_best = 0
                    else:
                        since_best += 1
            history.append(rec)
            if track_best:
                self._epochs_done = epoch + 1
                self._opt_state = optimizer.state_dict()
                if checkpoint_path is not None and rank == 0:
                    self.save(checkpoint_path)
            if has_val and cfg.patience is not None and since_best >= cfg.patience:
                break
        if track_best and has_val and self._best is not None:
            module.load_state_dict(self._best["state"])

    @torch.no_grad()
    def _val_score(self, subjects: list[_Subject]) -> float:
        from ..metrics import pearson_per_vertex

        scores = []
        for sd in subjects:
            if len(sd.val_idx) < 2:
                continue
            pred = self._predict_tensor(sd.x_rows(sd.val_idx), sd.name)
            r = pearson_per_vertex(sd.y_rows(sd.val_idx).numpy(), pred)
            scores.append(float(np.nanmedian(r)) if np.isfinite(r).any() else 0.0)
        return float(np.mean(scores)) if scores else float("nan")

    @staticmethod
    def _input_stats(subjects: list[_Subject]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per (layer, channel) mean and std of the training features, and the real channels per layer
        (:func:`~.universal_module.layer_channel_stats`), in blocks of 256 images. In a distributed job
        each rank sums its share of every block (rows ``rank::world``) and the sums are added up
        (all-reduce): every rank reads only 1 / world of the features and gets the same statistics."""
        info = dist_info()
        rank, world = info.rank, info.world_size
        blocks = [(sd, sd.train_idx[i:i + 256][rank::world]) for sd in subjects for i in range(0, len(sd.train_idx), 256)]
        total, sq, count = layer_channel_sums(sd.x_rows(rows) for sd, rows in blocks if len(rows))
        if info.world_size > 1:
            import torch.distributed as dist

            L, C = (int(s) for s in (subjects[0].X.shape[1], subjects[0].X.shape[3]))
            buf = torch.zeros(2 * L * C + 1, dtype=torch.float64)
            if total is not None:
                buf[:L * C], buf[L * C:2 * L * C], buf[-1] = total.reshape(-1), sq.reshape(-1), float(count)
            buf = buf.to(info.device)  # NCCL reduces CUDA tensors only
            dist.all_reduce(buf)
            buf = buf.cpu()
            total, sq = buf[:L * C].reshape(L, C), buf[L * C:2 * L * C].reshape(L, C)
            count = int(round(float(buf[-1])))
        return channel_stats_from_sums(total, sq, count)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        m = self.module_
        emb = [m.embeddings[name] for name in self._subject_order]
        attn = [m.pos_embed, m.query.weight, m.query.bias, m.key_weight]
        ids = {id(p) for p in attn}
        rest = [p for p in m.shared_parameters() if id(p) not in ids]
        return torch.optim.Adam([
            {"params": rest, "lr": cfg.lr},
            {"params": attn, "lr": cfg.attn_lr or cfg.lr},
            {"params": emb, "lr": cfg.embed_lr},
        ], weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------ public API
    def fit(self, data: Mapping[str, tuple], validation: Mapping[str, tuple] | None = None,
            resume_from: str | Path | None = None, checkpoint_path: str | Path | None = None
            ) -> "UniversalEncoder":
        """Train from scratch (or resume) on one or several subjects jointly.

        Parameters
        ----------
        data : {subject: (X_layers, Y)} with X_layers (n_images, L, P, C_in)
            (FeatureSet-like or array) and Y (n_images, n_voxels). Subjects may
            have different images and different voxel counts; L, P, C_in must agree.
        validation : optional {subject: (X_layers, Y)} held-out images for
            early stopping (overrides ``config.val_fraction``).
        resume_from : a checkpoint written by :meth:`save` (or by ``checkpoint_path``)
            of a run on the same subjects; training continues from its epoch up
            to ``config.n_epochs`` with its optimizer state.
        checkpoint_path : written atomically after every epoch (resumable).

        Returns
        -------
        self
        """
        cfg = self.config
        self._drop_terms_cache()
        if resume_from is not None:
            ck = self._read_checkpoint(resume_from)
            if ck.get("optimizer") is None:
                raise BrainVizDataError(resume_from, "holds no optimizer state; cannot resume training from it")
            # keep the caller's run settings (n_epochs, progress, ...), but the architecture of the checkpoint
            arch = ("embed_dim", "proj_dim", "mlp_hidden")
            saved = UniversalConfig.from_dict(ck["config"])
            for k in arch:
                if getattr(saved, k) != getattr(cfg, k):
                    raise BrainVizDataError(resume_from, f"config.{k}={getattr(saved, k)!r} differs from this estimator's {getattr(cfg, k)!r}")
            self._restore(ck)
            order = list(ck["subject_order"])
            if sorted(order) != sorted(data):
                raise BrainVizDataError("data", f"subjects {sorted(data)} differ from the checkpoint's {sorted(order)}")
            data = {k: data[k] for k in order}
            subjects, _ = self._prepare(data, validation, cfg.val_fraction, "fit")
            for sd in subjects:
                if sd.n_voxels != self.module_.embeddings[sd.name].shape[0]:
                    raise BrainVizDataError(f"data[{sd.name!r}].Y", f"has {sd.n_voxels} voxels, the checkpoint has "
                                            f"{self.module_.embeddings[sd.name].shape[0]}")
            optimizer = self._make_optimizer()
            optimizer.load_state_dict(ck["optimizer"])
            start = int(ck["epoch"])
        else:
            self.module_ = None
            self.history_, self.transfer_history_, self._best = [], {}, None
            subjects, (L, P, Cin) = self._prepare(data, validation, cfg.val_fraction, "fit")
            torch.manual_seed(cfg.seed)
            module = UniversalEncoderModule(L, P, Cin, proj_dim=cfg.proj_dim, embed_dim=cfg.embed_dim,
                                            mlp_hidden=cfg.mlp_hidden, embed_init_std=cfg.embed_init_std,
                                        pos_init_std=cfg.pos_init_std)
            mean, std, active = self._input_stats(subjects)
            module.in_mean.copy_(mean)
            module.in_std.copy_(std)
            module.layer_channels.copy_(active)
            for sd in subjects:
                g = torch.Generator().manual_seed(_name_seed(cfg.seed, sd.name))
                module.add_subject(sd.name, sd.n_voxels, generator=g)
            self.module_ = module.to(self.device)
            self._subject_order = [sd.name for sd in subjects]
            optimizer = self._make_optimizer()
            start = 0
            self._epochs_done = 0
        n_epochs = self.epochs_for({sd.name: (len(sd.train_idx), sd.n_voxels) for sd in subjects},
                                   cfg.voxel_updates, cfg.n_epochs, cfg.min_epochs)
        self._run_epochs(subjects, optimizer, start, n_epochs, (0,), "fit", self.history_,
                         checkpoint_path=checkpoint_path)
        self._opt_state = optimizer.state_dict()
        self.embedding_cosine_ = {sd.name: self.embedding_cosine_to_init(sd.name) for sd in subjects}
        self.input_bytes_read_ = {"features": sum(sd.x_bytes for sd in subjects),
                                  "responses": sum(sd.y_bytes for sd in subjects)}
        return self

    def initial_embeddings(self, subject: str) -> np.ndarray:
        """(V, E) the embeddings ``subject`` started from (regenerated from ``(seed, subject)``)."""
        self._check_subject(subject)
        V, E = self.module_.embeddings[subject].shape
        g = torch.Generator().manual_seed(_name_seed(self.config.seed, subject))
        return (torch.randn(int(V), int(E), generator=g) * self.config.embed_init_std).numpy()

    def embedding_cosine_to_init(self, subject: str) -> float:
        """Median over voxels of cosine(final embedding, initial embedding) of ``subject``:
        near 1 = the embeddings are still mostly their random start, near 0 = learned."""
        a = self.voxel_embeddings(subject).astype(np.float64)
        b = self.initial_embeddings(subject).astype(np.float64)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        return float(np.median(cos))

    def transfer(self, subject: str, X: Any, Y: Any, n_epochs: int | None = None, lr: float | None = None,
                 validation: tuple | None = None) -> "UniversalEncoder":
        """Add a new subject and learn ONLY its voxel embeddings (report 004 sec. 4.3).

        Every shared weight and every other subject's embeddings stay frozen
        (bitwise unchanged). Parameters: ``X`` (n_images, L, P, C_in) features,
        ``Y`` (n_images, n_voxels) responses of the new subject; ``n_epochs``
        and ``lr`` default to ``config.transfer_epochs`` / ``config.transfer_lr``;
        ``validation`` an optional (X_val, Y_val) pair for early stopping with
        ``config.patience`` (the best epoch's embeddings are kept).
        """
        self._check_fitted()
        cfg = self.config
        self._drop_terms_cache()
        if not isinstance(subject, str) or not subject:
            raise BrainVizDataError("subject", f"must be a non-empty string, got {subject!r}")
        if subject in self.module_.embeddings:
            raise BrainVizDataError("subject", f"{subject!r} already exists; call remove_subject first")
        lr = cfg.transfer_lr if lr is None else float(lr)
        val = {subject: validation} if validation is not None else None
        subjects, _ = self._prepare({subject: (X, Y)}, val, 0.0, "transfer")
        sd = subjects[0]
        if n_epochs is None:
            n_epochs = self.epochs_for({subject: (len(sd.train_idx), sd.n_voxels)}, cfg.transfer_updates,
                                       cfg.transfer_epochs)
        n_epochs = int(n_epochs)
        g = torch.Generator().manual_seed(_name_seed(cfg.seed, subject))
        self.module_.add_subject(subject, sd.n_voxels, generator=g)
        emb = self.module_.embeddings[subject]
        flags = {n: p.requires_grad for n, p in self.module_.named_parameters()}
        try:
            for n, p in self.module_.named_parameters():
                p.requires_grad_(p is emb)
            optimizer = torch.optim.Adam([emb], lr=lr)
            scaler = select(self.device, cfg.amp, "off").grad_scaler()  # one for all epochs (fp16 only)
            hist: list[dict] = []
            best = None
            since = 0
            for epoch in range(n_epochs):  # epoch by epoch so that early stopping keeps the best embedding
                self._run_epochs(subjects, optimizer, epoch, epoch + 1, (1, zlib.crc32(subject.encode())),
                                 f"transfer {subject}", hist, track_best=False, of=n_epochs, scaler=scaler)
                if len(sd.val_idx):
                    score = hist[-1]["val_score"]
                    if best is None or score > best[0]:
                        best, since = (score, emb.detach().clone()), 0
                    else:
                        since += 1
                        if cfg.patience is not None and since >= cfg.patience:
                            break
            if best is not None:
                with torch.no_grad():
                    emb.copy_(best[1])
        except BaseException:
            del self.module_.embeddings[subject]
            raise
        finally:
            for n, p in self.module_.named_parameters():
                p.requires_grad_(flags.get(n, True))
        self.transfer_history_[subject] = hist
        self.embedding_cosine_[subject] = self.embedding_cosine_to_init(subject)
        return self

    def remove_subject(self, subject: str) -> None:
        """Drop a subject's embeddings (e.g. between points of a transfer curve)."""
        self._check_subject(subject)
        self._drop_terms_cache()
        if subject in self._subject_order:
            raise BrainVizDataError("subject", f"{subject!r} was trained by fit(); only transferred subjects can be removed")
        del self.module_.embeddings[subject]
        self.transfer_history_.pop(subject, None)

    def cache_voxel_terms(self, max_subjects: int) -> "UniversalEncoder":
        """Keep the image-independent voxel terms of up to ``max_subjects`` subjects between
        :meth:`predict` calls (least recently used dropped; 0 = off, the default).

        For serving (live prediction of one image at a time): the per-voxel part of
        the forward pass (queries folded into keys, positional and functional
        attention weights) is then computed once per subject instead of per call.
        Memory per subject: :meth:`voxel_terms_nbytes`. A cached entry is
        recomputed automatically when the weights change (training, transfer, load).
        """
        self._terms_max = max(0, int(max_subjects))
        self._terms_cache = OrderedDict()
        return self

    def voxel_terms_nbytes(self, subject: str) -> int:
        """Bytes (float32) that :meth:`cache_voxel_terms` keeps for ``subject``:
        n_voxels x :meth:`UniversalEncoderModule.voxel_terms_width` x 4."""
        self._check_subject(subject)
        return 4 * self.subjects[subject] * self.module_.voxel_terms_width()

    def _drop_terms_cache(self) -> None:
        """Forget cached voxel terms (the weights or the subjects are about to change)."""
        if self._terms_cache is not None:
            self._terms_cache.clear()

    def _voxel_chunks(self, subject: str) -> list[tuple[int, int, VoxelTerms]]:
        """[(first voxel, stop, VoxelTerms)] of ``subject`` in chunks of ``predict_batch_voxels``."""
        m = self.module_
        emb = m.embeddings[subject]
        deps = (emb, m.key_weight, m.query.weight, m.query.bias, m.pos_embed, m.feature_embed, m.mlp_w2, m.mlp_b2)
        key = (id(emb), self.device.type, tuple(t._version for t in deps))
        cache = self._terms_cache
        if cache is not None and subject in cache and cache[subject][0] == key:
            cache.move_to_end(subject)
            return cache[subject][1]
        V, step = int(emb.shape[0]), self.config.predict_batch_voxels
        chunks = []
        with torch.no_grad(), select(self.device, self.config.amp, "off").autocast():
            for j in range(0, V, step):
                vox = torch.arange(j, min(V, j + step), device=emb.device)
                chunks.append((j, min(V, j + step), m.voxel_terms(emb.index_select(0, vox))))
        if cache is not None and self._terms_max > 0:
            cache[subject] = (key, chunks)
            while len(cache) > self._terms_max:
                cache.popitem(last=False)
        return chunks

    @torch.no_grad()
    def _predict_tensor(self, X: torch.Tensor, subject: str, chunks: list | None = None) -> np.ndarray:
        cfg = self.config
        module = self.module_
        was_training = module.training
        module.eval()
        n = X.shape[0]
        V = module.embeddings[subject].shape[0]
        out = np.empty((n, V), dtype=np.float32)
        dev = self.device
        accel = select(dev, cfg.amp, "off")  # bf16 autocast on CUDA; compiled inference not worth its warm-up
        chunks = chunks if chunks is not None else self._voxel_chunks(subject)
        for i in range(0, n, cfg.predict_batch_images):
            x = to_device(X[i:i + cfg.predict_batch_images], dev, torch.float32)
            with accel.autocast():
                f = module.project(x)  # once per image batch, shared by every voxel chunk
                for j0, j1, terms in chunks:
                    out[i:i + x.shape[0], j0:j1] = module.forward_values(f, terms).float().cpu().numpy()
        module.train(was_training)
        return out

    def predict(self, X: Any, subject: str | None = None) -> np.ndarray:
        """Predicted responses (n_images, n_voxels) float32 of ``subject`` to images with features X.

        ``subject`` may be left out when the model has exactly one subject (the call every
        encoder shares: ``model.predict(X, subject=...)``).
        """
        if subject is None:
            self._check_fitted()
            if len(self.module_.embeddings) != 1:
                raise BrainVizDataError("subject", f"required: the model has subjects {sorted(self.module_.embeddings)}")
            subject = next(iter(self.module_.embeddings))
        self._check_subject(subject)
        layers, _ = self._check_layers(X, "X")
        out = np.empty((int(layers.shape[0]), self.subjects[subject]), dtype=np.float32)
        chunks = self._voxel_chunks(subject)
        step = 512
        for i in range(0, layers.shape[0], step):  # bounded memory for memmaps
            out[i:i + step] = self._predict_tensor(_to_tensor(layers[i:i + step]), subject, chunks)
        return out

    def score(self, X: Any, Y: Any, subject: str) -> np.ndarray:
        """Per-voxel Pearson r (n_voxels,) of the predictions of ``subject`` against Y."""
        from ..metrics import pearson_per_vertex

        pred = self.predict(X, subject)
        Yc = as_responses(Y, pred.shape[0], "Y")
        if Yc.shape[1] != pred.shape[1]:
            raise BrainVizDataError("Y", f"has {Yc.shape[1]} voxels, subject {subject!r} has {pred.shape[1]}")
        return pearson_per_vertex(Yc, pred)

    def voxel_embeddings(self, subject: str) -> np.ndarray:
        """The learned voxel embeddings (n_voxels, E) float32 of ``subject``."""
        self._check_subject(subject)
        return self.module_.embeddings[subject].detach().cpu().numpy().astype(np.float32)

    def spatial_attention(self, X: Any, subject: str, voxels=None) -> np.ndarray:
        """Spatial attention maps (n_images, n_sel_voxels, L, P) (each sums to 1 over P)."""
        self._check_subject(subject)
        layers, _ = self._check_layers(X, "X")
        vt = None if voxels is None else torch.as_tensor(np.asarray(voxels), dtype=torch.long, device=self.device)
        with torch.no_grad():
            x = to_device(_to_tensor(layers), self.device, torch.float32)
            _, attn, _ = self.module_(x, subject, vt, return_attention=True)
        return attn.cpu().numpy()

    # ------------------------------------------------------------------ checkpoints
    def _payload(self, prediction_only: bool = False) -> dict:
        """The checkpoint dict; ``prediction_only`` leaves out the optimizer state and the best-epoch
        weights (what resuming training needs, not predicting: about 2/3 of the bytes)."""
        self._check_fitted()
        m = self.module_
        keep_training = not prediction_only
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "shape": [m.n_layers, m.n_patches, m.in_channels],
            "subjects": {k: int(v.shape[0]) for k, v in m.embeddings.items()},
            "subject_order": list(self._subject_order),
            "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
            "optimizer": self._opt_state if keep_training else None,
            "epoch": int(self._epochs_done),
            "embedding_cosine": dict(self.embedding_cosine_),
            "history": list(self.history_),
            "transfer_history": dict(self.transfer_history_),
            "best": None if self._best is None or not keep_training else {
                "score": float(self._best["score"]), "epoch": int(self._best["epoch"]),
                "state": {k: v.detach().cpu() for k, v in self._best["state"].items()}},
        }

    def save(self, path: str | Path) -> None:
        """Write a checkpoint (config, weights, subjects, optimizer state, epoch, history) atomically."""
        payload = self._payload()
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)

    def to_bytes(self) -> bytes:
        """A prediction-only checkpoint as bytes (no optimizer state, no best-epoch weights): what the
        store keeps for live prediction; :meth:`load` reads it back (``torch.load(weights_only=True)``)."""
        buf = io.BytesIO()
        torch.save(self._payload(prediction_only=True), buf)
        return buf.getvalue()

    @staticmethod
    def _read_checkpoint(source: str | Path | bytes, name: str | Path | None = None) -> dict:
        """The checkpoint dict of a file or of bytes (``name``: what messages call the bytes). Tensors and
        plain containers only (``torch.load(weights_only=True)``): no pickled code runs."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            path, stream = (name or "stored checkpoint"), io.BytesIO(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise BrainVizDataError(path, "checkpoint file is missing")
            stream = path
        try:
            ck = torch.load(stream, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise BrainVizDataError(path, f"not a readable checkpoint ({safe_message(exc)})") from None
        if isinstance(ck, dict) and ck.get("format") in _OLD_FORMATS:
            raise BrainVizDataError(path, f"is a {ck['format']} checkpoint from an older BrainViz "
                                    f"({_OLD_FORMATS[ck['format']]}); retrain it with `python -m precompute train`")
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
            raise BrainVizDataError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
        return ck

    def _restore(self, ck: dict) -> None:
        cfg = UniversalConfig.from_dict(ck["config"])
        L, P, Cin = ck["shape"]
        module = UniversalEncoderModule(L, P, Cin, proj_dim=cfg.proj_dim, embed_dim=cfg.embed_dim,
                                        mlp_hidden=cfg.mlp_hidden, embed_init_std=cfg.embed_init_std,
                                        pos_init_std=cfg.pos_init_std)
        for name, n in ck["subjects"].items():
            module.add_subject(name, int(n))
        module.load_state_dict(ck["state_dict"])
        self.module_ = module.to(self.device)
        self._subject_order = list(ck["subject_order"])
        self._epochs_done = int(ck["epoch"])
        self._opt_state = ck.get("optimizer")
        self.history_ = list(ck.get("history") or [])
        self.transfer_history_ = dict(ck.get("transfer_history") or {})
        self.embedding_cosine_ = dict(ck.get("embedding_cosine") or {})
        best = ck.get("best")
        self._best = None if best is None else {
            "score": best["score"], "epoch": best["epoch"],
            "state": {k: v.to(self.device) for k, v in best["state"].items()}}

    @classmethod
    def load(cls, path: str | Path | bytes, device: str | None = None,
             name: str | Path | None = None) -> "UniversalEncoder":
        """Load a checkpoint written by :meth:`save` (a file) or :meth:`to_bytes` (bytes; ``name`` labels
        them in messages), config and all subjects included."""
        ck = cls._read_checkpoint(path, name)
        where = (name or "stored checkpoint") if isinstance(path, (bytes, bytearray, memoryview)) else path
        cfg = UniversalConfig.from_dict(ck["config"])
        cfg.device = device
        est = cls(cfg)
        try:
            est._restore(ck)
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise BrainVizDataError(where, f"inconsistent checkpoint ({exc})") from None
        return est

    def __repr__(self) -> str:
        c = self.config
        subj = "unfitted" if self.module_ is None else f"subjects={self.subjects}"
        return (f"UniversalEncoder(E={c.embed_dim}, C={c.proj_dim}, n_epochs={c.n_epochs}, "
                f"batch={c.batch_images}x{c.batch_voxels}, {subj})")
