"""Read and write datasets in the Algonauts 2023 NSD layout.

The layout (one folder per subject, ``subjNN``)::

    subjNN/
      training_split/training_images/train-0001_nsd-00013.png ...
      training_split/training_fmri/{lh,rh}_training_fmri.npy     float32 (n_train, n_hemi)
      test_split/test_images/test-0001_nsd-00845.png ...
      roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy         (n_surface,) 0/1
      roi_masks/{lh,rh}.<class>_challenge_space.npy              (n_hemi,) int ROI ids
      roi_masks/{lh,rh}.<class>_fsaverage_space.npy              (n_surface,) int ROI ids
      roi_masks/mapping_<class>.npy                              pickled {id: name} (read without running code)

``n_surface`` is 163,842 (fsaverage, the real release) or 10,242 (fsaverage5,
the simulated demo brain). BrainViz also reads these optional extras, which
the real release lacks and the demo brain writes:

* ``test_split/test_fmri/{lh,rh}_test_fmri.npy``  float32 (n_test, n_hemi)
* ``{training,test}_split/{training,test}_fmri_repeats/{lh,rh}_*_fmri_repeats.npy``
  float32 (n_images, n_repeats, n_hemi): single-trial responses, z-scored per
  session, from which the noise ceiling is estimated.
* ``manifest.json`` at the dataset root (see :class:`AlgonautsDataset`).

Every malformed file raises :class:`~brainviz.errors.BrainVizDataError`
naming the file and the problem.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..atomic import save_npy
from ..errors import BrainVizDataError
from ..names import HEMIS, N_FSAVERAGE, N_FSAVERAGE5, ROI_CLASSES, ROI_GROUPS, ROI_SETS, SURFACE_SIZES
from ..safe_load import load_npy_object, safe_message

_IMAGE_NAME = re.compile(r"^(?P<split>train|test)-(?P<index>\d+)_(?P<dataset>[A-Za-z0-9]+)-(?P<id>\d+)\.(png|jpg|jpeg)$")


def roi_name_to_class() -> dict[str, str]:
    """Map every ROI name (e.g. ``"FFA-1"``) to its class (``"floc-faces"``)."""
    return {name: cls for cls, m in ROI_CLASSES.items() for i, name in m.items() if i}


# --------------------------------------------------------------------------- checks

def _load_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise BrainVizDataError(path, "file is missing")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for corrupt files
        raise BrainVizDataError(path, f"not a readable .npy array ({safe_message(exc)})") from None


def _check_responses(path: Path, arr: np.ndarray, *, n_rows: int | None, n_cols: int | None,
                     ndim: int = 2, check_finite: bool = True) -> None:
    if arr.ndim != ndim:
        raise BrainVizDataError(path, f"expected a {ndim}-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise BrainVizDataError(path, f"expected float responses, got dtype {arr.dtype}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise BrainVizDataError(path, f"has {arr.shape[0]} rows but the folder holds {n_rows} images")
    if n_cols is not None and arr.shape[-1] != n_cols:
        raise BrainVizDataError(path, f"has {arr.shape[-1]} vertices but the ROI masks describe {n_cols}")
    if check_finite:
        # chunked, so memory-mapped NSD-sized arrays are never loaded whole
        step = max(1, 2**24 // max(1, int(np.prod(arr.shape[1:]))))
        for start in range(0, arr.shape[0], step):
            block = np.asarray(arr[start:start + step])
            if not np.isfinite(block).all():
                bad = np.argwhere(~np.isfinite(block))[0]
                bad[0] += start
                raise BrainVizDataError(path, f"contains NaN or infinite values (first at index {tuple(int(b) for b in bad)})")


def _read_mapping(path: Path) -> dict[int, str]:
    """{id: name} from ``mapping_<class>.npy`` (a pickled dict in a 0-d object array, or a raw pickle).

    Read with a restricted unpickler (:func:`brainviz.safe_load.load_npy_object`): these files
    come from third parties, and a crafted pickle would otherwise run code when loaded.
    """
    if not path.is_file():
        raise BrainVizDataError(path, "file is missing")
    mapping = load_npy_object(path, expected="an ROI mapping")
    if isinstance(mapping, np.ndarray) and mapping.dtype.hasobject and mapping.size == 1:
        mapping = mapping.reshape(()).item()
    if not isinstance(mapping, Mapping):
        raise BrainVizDataError(path, f"expected a dict {{id: name}}, got {type(mapping).__name__}")
    try:
        return {int(k): str(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        raise BrainVizDataError(path, "ROI mapping keys must be integers") from None


def parse_image_name(path: str | Path) -> dict[str, object]:
    """Parse ``train-0001_nsd-00013.png`` into split, 1-based index, dataset and id.

    The id is kept as written: for NSD the 0-based index into the 73,000 NSD images, as the
    Algonauts 2023 release writes it (:data:`brainviz.data.images.NSD_ID_CONVENTION`).
    """
    m = _IMAGE_NAME.match(Path(path).name)
    if not m:
        raise BrainVizDataError(path, "image name does not follow '<split>-NNNN_<dataset>-NNNNN.png'")
    return {"split": m["split"], "index": int(m["index"]), "dataset": m["dataset"], "id": int(m["id"])}


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BrainVizDataError(folder, "image folder is missing")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    for p in files:
        parse_image_name(p)
    return files


#: What an image's header must say for its file extension.
_IMAGE_FORMATS = {".png": ("PNG",), ".jpg": ("JPEG", "MPO"), ".jpeg": ("JPEG", "MPO")}


def check_image_files(files: Iterable[Path], root: Path) -> None:
    """Open every image's header: raise BrainVizDataError naming the first file that is empty, not an
    image of its extension's type, unreadable, cut off (no end marker), or a symlink leading outside
    ``root`` (the dataset)."""
    from PIL import Image, UnidentifiedImageError

    root_real = Path(root).resolve()
    for p in files:
        target = p.resolve()  # (a symlinked file or a symlinked folder above it)
        if root_real not in target.parents:
            raise BrainVizDataError(p, f"is a symlink to {target}, outside the dataset folder {root}; "
                                       "copy the image into the dataset")
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise BrainVizDataError(p, f"cannot read the image ({exc.strerror})") from None
        if size == 0:
            raise BrainVizDataError(p, "the image file is empty (0 bytes)")
        try:
            with Image.open(p) as im:
                fmt, (w, h) = im.format, im.size
        except UnidentifiedImageError:
            raise BrainVizDataError(p, f"not an image (the file's header is not a {p.suffix[1:].upper()} header)") from None
        except Exception as exc:  # PIL raises several types on garbage headers
            raise BrainVizDataError(p, f"cannot read the image header ({type(exc).__name__}: {exc})") from None
        if fmt not in _IMAGE_FORMATS.get(p.suffix.lower(), (fmt,)):
            raise BrainVizDataError(p, f"named {p.suffix} but the file is a {fmt} image")
        if w < 1 or h < 1:
            raise BrainVizDataError(p, f"the image has no pixels ({w} x {h})")
        if not _ends_complete(p, fmt):
            raise BrainVizDataError(p, f"the {fmt} file is truncated (it lacks the end marker of a complete image)")


def _ends_complete(path: Path, fmt: str) -> bool:
    """A PNG ends with its IEND chunk, a JPEG with its end-of-image marker (trailing padding allowed):
    a cut-off download fails this from the file's last bytes, without decoding."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 256))
        tail = f.read()
    if fmt == "PNG":
        return b"IEND\xaeB`\x82" in tail[-64:]
    if fmt in ("JPEG", "MPO"):
        return b"\xff\xd9" in tail
    return True


# --------------------------------------------------------------------------- reader

@dataclass(frozen=True)
class RoiClass:
    """One ROI class of a subject.

    Attributes
    ----------
    name : str  e.g. ``"floc-faces"``
    mapping : dict  ROI id -> ROI name, 0 = ``"Unknown"``
    challenge : dict  hemisphere -> (n_hemi,) int ids per challenge-space vertex
    """

    name: str
    mapping: dict[int, str]
    challenge: dict[str, np.ndarray]

    def mask(self, roi: str, hemi: str) -> np.ndarray:
        """Boolean (n_hemi,) mask of the vertices of ``roi`` in ``hemi``."""
        ids = [i for i, n in self.mapping.items() if n == roi]
        return np.isin(self.challenge[hemi], ids)


class AlgonautsSubject:
    """One subject folder in the Algonauts 2023 layout.

    Responses are memory-mapped, never copied whole into memory until asked.
    Vertices are ordered left hemisphere first, then right ("both hemispheres
    concatenated", as report 003 does).

    Parameters
    ----------
    path : folder ``subjNN``
    validate : check every file (shapes, dtypes, NaNs, image counts) now.
    """

    def __init__(self, path: str | Path, *, validate: bool = True, root: str | Path | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise BrainVizDataError(self.path, "subject folder is missing")
        self.name = self.path.name
        if validate:
            self.validate(root)

    # ---- images
    @cached_property
    def train_images(self) -> list[Path]:
        """Training image paths, sorted (row order of the training responses)."""
        return _list_images(self.path / "training_split" / "training_images")

    @cached_property
    def test_images(self) -> list[Path]:
        """Test image paths, sorted (row order of the test responses)."""
        folder = self.path / "test_split" / "test_images"
        return _list_images(folder) if folder.is_dir() else []

    def image_table(self) -> pd.DataFrame:
        """One row per image: split, index, dataset, id, path."""
        rows = [dict(parse_image_name(p), path=str(p)) for p in self.train_images + self.test_images]
        return pd.DataFrame(rows, columns=["split", "index", "dataset", "id", "path"])

    # ---- vertices and ROIs
    @cached_property
    def surface_masks(self) -> dict[str, np.ndarray]:
        """hemi -> (n_surface,) bool: which surface vertices are in challenge space."""
        out = {}
        for h in HEMIS:
            p = self.path / "roi_masks" / f"{h}.all-vertices_fsaverage_space.npy"
            arr = _load_npy(p)
            if arr.ndim != 1 or arr.shape[0] not in SURFACE_SIZES:
                raise BrainVizDataError(p, f"expected length {N_FSAVERAGE} (fsaverage) or {N_FSAVERAGE5} (fsaverage5), got shape {arr.shape}")
            if not np.isin(arr, (0, 1)).all():
                raise BrainVizDataError(p, "expected only 0/1 values")
            out[h] = arr.astype(bool)
        if out["lh"].shape != out["rh"].shape:
            raise BrainVizDataError(self.path / "roi_masks", "lh and rh masks are on different surfaces")
        return out

    @property
    def surface(self) -> str:
        """``"fsaverage"`` or ``"fsaverage5"``."""
        return SURFACE_SIZES[self.surface_masks["lh"].shape[0]]

    @property
    def n_vertices(self) -> dict[str, int]:
        """hemi -> number of challenge-space vertices."""
        return {h: int(m.sum()) for h, m in self.surface_masks.items()}

    def surface_indices(self, hemi: str) -> np.ndarray:
        """(n_hemi,) surface vertex index of each challenge-space vertex."""
        return np.flatnonzero(self.surface_masks[hemi])

    @cached_property
    def roi_classes(self) -> dict[str, RoiClass]:
        """All ROI classes present in ``roi_masks/`` (missing ones are skipped)."""
        out = {}
        masks = self.path / "roi_masks"
        for cls in ROI_CLASSES:
            files = {h: masks / f"{h}.{cls}_challenge_space.npy" for h in HEMIS}
            mp = masks / f"mapping_{cls}.npy"
            if not any(f.exists() for f in files.values()) and not mp.exists():
                continue
            mapping = _read_mapping(mp)
            challenge = {}
            for h, f in files.items():
                arr = _load_npy(f)
                if arr.ndim != 1 or arr.shape[0] != self.n_vertices[h]:
                    raise BrainVizDataError(f, f"expected shape ({self.n_vertices[h]},) to match {h}.all-vertices_fsaverage_space.npy, got {arr.shape}")
                if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
                    raise BrainVizDataError(f, f"expected integer ROI ids, got dtype {arr.dtype} with non-finite values" if np.issubdtype(arr.dtype, np.number) else f"expected integer ROI ids, got dtype {arr.dtype}")
                ids = arr.astype(np.int64)
                unknown = set(np.unique(ids).tolist()) - set(mapping)
                if unknown:
                    raise BrainVizDataError(f, f"ROI ids {sorted(unknown)} are not in {mp.name}")
                challenge[h] = ids
            out[cls] = RoiClass(cls, mapping, challenge)
        return out

    def roi_names(self) -> dict[str, list[str]]:
        """ROI class -> names of its ROIs that have at least one vertex."""
        out = {}
        for cls, rc in self.roi_classes.items():
            present = set(np.concatenate([rc.challenge[h] for h in HEMIS]).tolist())
            out[cls] = [n for i, n in rc.mapping.items() if i and i in present]
        return out

    def roi_mask(self, rois: str | Iterable[str] | None = None, hemis: Sequence[str] = HEMIS) -> np.ndarray:
        """Boolean mask over the concatenated vertices of ``hemis``.

        ``rois`` is None (all vertices), a ROI name (``"FFA-1"``), a ROI set
        name from :data:`ROI_SETS` (``"set2"``), a ROI group from
        :data:`ROI_GROUPS` (``"faces"``), a class name (``"floc-faces"``: any
        ROI of it), or a list of any of these (union).
        """
        n = sum(self.n_vertices[h] for h in hemis)
        if rois is None:
            return np.ones(n, bool)
        names = _expand_rois(rois)
        parts = []
        for h in hemis:
            m = np.zeros(self.n_vertices[h], bool)
            for rc in self.roi_classes.values():
                ids = [i for i, nm in rc.mapping.items() if i and (nm in names or rc.name in names)]
                if ids:
                    m |= np.isin(rc.challenge[h], ids)
            parts.append(m)
        return np.concatenate(parts)

    def vertex_table(self) -> pd.DataFrame:
        """One row per challenge-space vertex (lh then rh).

        Columns: ``hemi``, ``index`` (challenge-space index within hemi),
        ``surface_index`` (fsaverage or fsaverage5 vertex), ``fsaverage5_index``
        (the same vertex on fsaverage5, -1 when the fsaverage vertex is not one
        of fsaverage5's), and one column per ROI class with the ROI name.
        """
        frames = []
        for h in HEMIS:
            sidx = self.surface_indices(h)
            df = pd.DataFrame({"hemi": h, "index": np.arange(len(sidx)), "surface_index": sidx})
            df["fsaverage5_index"] = np.where(sidx < N_FSAVERAGE5, sidx, -1)
            for cls, rc in self.roi_classes.items():
                df[cls] = pd.Series(rc.challenge[h]).map(rc.mapping).to_numpy()
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    # ---- responses
    def _fmri_path(self, split: str, hemi: str, repeats: bool = False) -> Path:
        sub = "training" if split == "train" else "test"
        folder = f"{sub}_fmri_repeats" if repeats else f"{sub}_fmri"
        name = f"{hemi}_{sub}_fmri_repeats.npy" if repeats else f"{hemi}_{sub}_fmri.npy"
        return self.path / f"{sub}_split" / folder / name

    def has_responses(self, split: str) -> bool:
        return all(self._fmri_path(split, h).is_file() for h in HEMIS)

    def has_repeats(self, split: str) -> bool:
        return all(self._fmri_path(split, h, repeats=True).is_file() for h in HEMIS)

    def hemi_responses(self, split: str, hemi: str) -> np.ndarray:
        """Memory-mapped (n_images, n_hemi) float32 responses of one hemisphere."""
        return _load_npy(self._fmri_path(split, hemi), mmap=True)

    def responses(self, split: str = "train", rois: str | Iterable[str] | None = None,
                  hemis: Sequence[str] = HEMIS, rows: np.ndarray | None = None) -> np.ndarray:
        """(n_images, n_selected) float32 responses, hemispheres concatenated.

        ``split`` is ``"train"`` or ``"test"``; ``rois`` as in :meth:`roi_mask`; ``rows``: only these rows
        of the file, in this order (None: all), read from the memory map without loading the rest.
        """
        if not self.has_responses(split):
            raise BrainVizDataError(self._fmri_path(split, hemis[0]), f"no {split} responses in this dataset")
        mask = self.roi_mask(rois, hemis)
        parts, start = [], 0
        for h in hemis:
            n = self.n_vertices[h]
            m = mask[start:start + n]
            start += n
            arr = self.hemi_responses(split, h)
            if rows is not None:
                arr = arr[np.asarray(rows, dtype=np.int64)]
            parts.append(np.asarray(arr[:, m] if not m.all() else arr, dtype=np.float32))
        return np.concatenate(parts, axis=1)

    def repeats(self, split: str = "train", hemis: Sequence[str] = HEMIS, rows: np.ndarray | None = None) -> np.ndarray:
        """(n_images, n_repeats, n_vertices) single-trial responses, hemispheres concatenated (``rows`` as in
        :meth:`responses`)."""
        arrs = [_load_npy(self._fmri_path(split, h, repeats=True), mmap=True) for h in hemis]
        if rows is not None:
            arrs = [a[np.asarray(rows, dtype=np.int64)] for a in arrs]
        return np.concatenate([np.asarray(a, dtype=np.float32) for a in arrs], axis=2)

    # ---- validation
    def validate(self, root: str | Path | None = None) -> None:
        """Check every file of the subject; raise BrainVizDataError on the first problem.

        Image files are opened (header only); symlinks must stay inside ``root`` (default: the
        folder holding this subject).
        """
        check_image_files(self.train_images + self.test_images, Path(root) if root else self.path.parent)
        nv = self.n_vertices
        _ = self.roi_classes
        if not self.roi_classes:
            raise BrainVizDataError(self.path / "roi_masks", "no ROI class files found (expected e.g. lh.prf-visualrois_challenge_space.npy)")
        for cls, rc in self.roi_classes.items():
            for h in HEMIS:
                p = self.path / "roi_masks" / f"{h}.{cls}_fsaverage_space.npy"
                if p.exists():
                    arr = _load_npy(p)
                    if arr.shape != self.surface_masks[h].shape:
                        raise BrainVizDataError(p, f"expected shape {self.surface_masks[h].shape}, got {arr.shape}")
        for split, images in (("train", self.train_images), ("test", self.test_images)):
            if not self.has_responses(split):
                if split == "train":
                    raise BrainVizDataError(self._fmri_path(split, "lh"), "training responses are missing")
                continue
            for h in HEMIS:
                p = self._fmri_path(split, h)
                _check_responses(p, self.hemi_responses(split, h), n_rows=len(images), n_cols=nv[h])
                if self.has_repeats(split):
                    rp = self._fmri_path(split, h, repeats=True)
                    _check_responses(rp, _load_npy(rp, mmap=True), n_rows=len(images), n_cols=nv[h], ndim=3)

    def summary(self) -> dict[str, object]:
        """What the subject holds, for ``precompute inspect`` and the app."""
        return {
            "subject": self.name,
            "surface": self.surface,
            "n_train": len(self.train_images),
            "n_test": len(self.test_images),
            "test_responses": self.has_responses("test"),
            "repeats": self.has_repeats("train"),
            "vertices": self.n_vertices,
            "rois": self.roi_names(),
            "datasets": sorted({parse_image_name(p)["dataset"] for p in self.train_images}),
        }


def _expand_rois(rois: str | Iterable[str]) -> set[str]:
    items = [rois] if isinstance(rois, str) else list(rois)
    names: set[str] = set()
    for r in items:
        if r in ROI_SETS:
            names.update(ROI_SETS[r])
        elif r in ROI_GROUPS:
            names.update(ROI_GROUPS[r])
        else:
            names.add(r)
    known = set(roi_name_to_class()) | set(ROI_CLASSES)
    unknown = names - known
    if unknown:
        raise BrainVizDataError("rois", f"unknown ROI names {sorted(unknown)}; known: ROI names, classes, sets {sorted(ROI_SETS)} and groups {sorted(ROI_GROUPS)}")
    return names


@dataclass
class AlgonautsDataset:
    """A folder of ``subjNN`` folders, optionally with a ``manifest.json``.

    The manifest (written by the demo brain) holds at least ``simulated``
    (bool) and ``surface``; real downloads have none and count as real data.
    """

    path: Path
    subjects: dict[str, AlgonautsSubject] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        return bool(self.manifest.get("simulated", False))

    @property
    def ground_truth_dir(self) -> Path | None:
        gt = self.path / "ground_truth"
        return gt if gt.is_dir() else None

    def planted_regions(self, subject: str) -> np.ndarray | None:
        """(V,) planted region name per vertex, lh then rh (demo brain GROUND TRUTH: for simulation
        checks only), from ``ground_truth/<subject>/``; None when the dataset has none (real data)."""
        gt = self.ground_truth_dir
        if gt is None or not (gt / subject).is_dir():
            return None
        names = json.loads((gt / subject / "regions.json").read_text())
        codes = np.concatenate([np.load(gt / subject / f"{h}_region.npy") for h in HEMIS])
        return np.array([names[str(int(c))] for c in codes], dtype=object)

    def clean_responses(self, subject: str, split: str) -> np.ndarray | None:
        """(n_images, V) the demo brain's NOISE-FREE simulated responses of ``subject`` to the ``split``
        images, rows as :meth:`Subject.responses`, lh then rh (GROUND TRUTH: for simulation checks
        only); None when the dataset has none (real data)."""
        gt = self.ground_truth_dir
        files = [gt / subject / f"{h}_{split}_clean.npy" for h in HEMIS] if gt is not None else []
        if not files or not all(f.exists() for f in files):
            return None
        return np.concatenate([np.load(f) for f in files], axis=1)

    def summary(self) -> dict[str, object]:
        return {"path": str(self.path), "simulated": self.simulated,
                "subjects": [s.summary() for s in self.subjects.values()]}


def load_dataset(path: str | Path, *, validate: bool = True) -> AlgonautsDataset:
    """Open a dataset folder holding ``subjNN`` folders (or one subject folder itself)."""
    path = Path(path)
    if not path.is_dir():
        raise BrainVizDataError(path, "dataset folder is missing")
    manifest = {}
    mf = path / "manifest.json"
    if mf.exists():
        try:
            manifest = json.loads(mf.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BrainVizDataError(mf, f"not valid JSON ({exc})") from None
        except RecursionError:
            raise BrainVizDataError(mf, "the JSON is nested too deeply to read") from None
        except OSError as exc:
            raise BrainVizDataError(mf, f"cannot read the manifest ({exc.strerror})") from None
        if not isinstance(manifest, dict):
            raise BrainVizDataError(mf, f"expected a JSON object {{\"simulated\": ..., \"surface\": ...}}, "
                                        f"got a JSON {type(manifest).__name__}")
    if (path / "roi_masks").is_dir():
        subs = [path]
    else:
        subs = sorted(p for p in path.iterdir() if p.is_dir() and re.fullmatch(r"subj\d+", p.name))
    if not subs:
        raise BrainVizDataError(path, "no subjNN folders found (expected the Algonauts 2023 layout)")
    return AlgonautsDataset(path, {p.name: AlgonautsSubject(p, validate=validate, root=path) for p in subs}, manifest)


# --------------------------------------------------------------------------- writer

def write_subject(
    subject_dir: str | Path,
    *,
    train_images: Sequence[tuple[str, str | Path]],
    test_images: Sequence[tuple[str, str | Path]],
    surface_masks: Mapping[str, np.ndarray],
    roi_challenge: Mapping[str, Mapping[str, np.ndarray]],
    train_fmri: Mapping[str, np.ndarray],
    test_fmri: Mapping[str, np.ndarray] | None = None,
    train_repeats: Mapping[str, np.ndarray] | None = None,
    test_repeats: Mapping[str, np.ndarray] | None = None,
    link_images: bool = False,
) -> Path:
    """Write one subject in the Algonauts 2023 layout (used by the demo brain and test fixtures).

    Parameters
    ----------
    train_images, test_images : list of (file name, source image path); names
        like ``train-0001_nsd-00013.png``. Sources are copied (or hard-linked
        when ``link_images`` and possible).
    surface_masks : hemi -> (n_surface,) 0/1 challenge-space mask.
    roi_challenge : class -> hemi -> (n_hemi,) int ROI ids (mappings from :data:`ROI_CLASSES`);
        the fsaverage-space arrays are derived from it.
    train_fmri, test_fmri : hemi -> (n_images, n_hemi) float32.
    train_repeats, test_repeats : hemi -> (n_images, n_repeats, n_hemi) float32.
    """
    d = Path(subject_dir)
    img_dirs = {"train": d / "training_split" / "training_images", "test": d / "test_split" / "test_images"}
    for split, items in (("train", train_images), ("test", test_images)):
        img_dirs[split].mkdir(parents=True, exist_ok=True)
        for name, src in items:
            parse_image_name(name)
            dst = img_dirs[split] / name
            if link_images:
                try:
                    dst.hardlink_to(src)
                    continue
                except OSError:
                    pass
            shutil.copyfile(src, dst)
    masks = d / "roi_masks"
    for h in HEMIS:
        sm = np.asarray(surface_masks[h]).astype(np.int64)
        save_npy(masks / f"{h}.all-vertices_fsaverage_space.npy", sm)
        for cls, per_hemi in roi_challenge.items():
            ids = np.asarray(per_hemi[h]).astype(np.int64)
            save_npy(masks / f"{h}.{cls}_challenge_space.npy", ids)
            full = np.zeros(sm.shape[0], np.int64)
            full[sm.astype(bool)] = ids
            save_npy(masks / f"{h}.{cls}_fsaverage_space.npy", full)
    for cls in roi_challenge:
        with open(masks / f"mapping_{cls}.npy", "wb") as f:
            np.save(f, np.array(ROI_CLASSES[cls], dtype=object), allow_pickle=True)
    groups = [("training", train_fmri, train_repeats), ("test", test_fmri, test_repeats)]
    for sub, fmri, reps in groups:
        for h in HEMIS:
            if fmri is not None:
                save_npy(d / f"{sub}_split" / f"{sub}_fmri" / f"{h}_{sub}_fmri.npy", np.asarray(fmri[h], np.float32))
            if reps is not None:
                save_npy(d / f"{sub}_split" / f"{sub}_fmri_repeats" / f"{h}_{sub}_fmri_repeats.npy", np.asarray(reps[h], np.float32))
    return d
