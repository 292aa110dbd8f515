"""Stimulus image sets and their semantic category scores.

Two real image sets are read from the shared data root:

* **NSD shared1000** (``nsd_shared1000/``): 1,000 RGB PNGs named
  ``sharedNNNN_nsdXXXXX.png`` (XXXXX = 1-based NSD id) with human-made HED
  tags in ``shared1000_HED.tsv`` (``nsd_id`` column 0-based).
* **vim-1** (``kay_vim1_stimuli/images/N.jpg``): 1,750 grayscale 128x128
  JPEGs without any semantic annotation (their scores are NaN).

Every image has a global key ``f"{dataset}-{id:05d}"`` (``nsd-02950``,
``vim1-00000``). For NSD the id is the **0-based index into the 73,000 NSD images**, the
convention of the Algonauts 2023 release (its file names ``train-0001_nsd-00013.png`` carry
"the 73,000 NSD image IDs ... start from 0, so that you can directly use them for indexing the
.hdf5 NSD images in Python": Algonauts 2023 development kit tutorial, section on the image file
names) and of the shared1000 TSV's ``nsd_id`` column. The shared1000 *file names* of
nsd_hed_labels carry the 1-based NSD id (``shared0001_nsd02951.png`` is 0-based 2950, whose
``nsd_id`` is 2950), the convention of the NSD data manual's MATLAB ``nsd_expdesign.mat``
(``sharedix``, ``subjectim``: 1-based); :func:`load_nsd_shared1000` converts them. See
:data:`NSD_ID_CONVENTION`. Category scores are a DataFrame indexed by key with float
columns in [0, 1] (:data:`CATEGORIES`) plus a ``tags`` string column (the
short HED string, empty when there are no tags).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import BrainVizDataError
from ..names import TAG_CATEGORIES
from ..paths import NSD_SHARED1000, VIM1_STIMULI, resolve_data_root

#: Category score columns, each in [0, 1].
CATEGORIES: tuple[str, ...] = TAG_CATEGORIES

#: How BrainViz numbers NSD images everywhere (keys, file names it writes, the store).
NSD_ID_CONVENTION = "0-based 73k NSD index (Algonauts 2023 file names; nsd_stimuli.hdf5 row)"

N_SHARED1000 = 1000
N_VIM1 = 1750
HED_FILE = "shared1000_HED.tsv"
HED_COLUMNS = ("File_Name", "nsd_id", "HED_short")
_SHARED_NAME = re.compile(r"^shared(?P<shared>\d{4})_nsd(?P<nsd>\d{5})\.png$")


def image_key(dataset: str, image_id: int) -> str:
    """The global image key, e.g. ``image_key("nsd", 2950) == "nsd-02950"``."""
    return f"{dataset}-{int(image_id):05d}"


@dataclass
class ImageSet:
    """An ordered set of stimulus images.

    Attributes
    ----------
    name : str  ``"nsd_shared1000"``, ``"vim1"``, or a subject's name.
    keys : list[str]  (n_images,) global image keys, in row order.
    ids : np.ndarray  (n_images,) int dataset ids (NSD: 0-based 73k NSD index; vim-1: file number).
    paths : list[Path]  (n_images,) image files.
    scores : pd.DataFrame  (n_images, 10 + 1) indexed by key: :data:`CATEGORIES` floats in [0, 1]
        (NaN where unknown) and ``tags`` (short HED string, "" when none).
    datasets : list[str]  (n_images,) dataset of each image (``nsd``, ``vim1``).
    """

    name: str
    keys: list[str]
    ids: np.ndarray
    paths: list[Path]
    scores: pd.DataFrame
    datasets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.keys)
        if not (len(self.ids) == len(self.paths) == len(self.scores) == n):
            raise BrainVizDataError(self.name, f"inconsistent image set: {n} keys, {len(self.ids)} ids, "
                                               f"{len(self.paths)} paths, {len(self.scores)} score rows")
        if not self.datasets:
            self.datasets = [k.split("-", 1)[0] for k in self.keys]

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, i: int) -> Image.Image:
        """Image ``i`` as an RGB PIL image (grayscale images are converted)."""
        p = self.paths[i]
        try:
            with Image.open(p) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise BrainVizDataError(p, "image file is missing") from None
        except Exception as exc:
            raise BrainVizDataError(p, f"not a readable image ({exc})") from None

    def load_gray(self, i: int, size: int | None = None) -> np.ndarray:
        """Image ``i`` as a (size, size) float32 luminance array in [0, 1] (original size if None)."""
        p = self.paths[i]
        try:
            with Image.open(p) as im:
                g = im.convert("L")
                if size is not None and g.size != (size, size):
                    g = g.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
                return np.asarray(g, dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise BrainVizDataError(p, "image file is missing") from None
        except Exception as exc:
            raise BrainVizDataError(p, f"not a readable image ({exc})") from None

    def index(self, key: str) -> int:
        """Row of image ``key``."""
        try:
            return self.keys.index(key)
        except ValueError:
            raise BrainVizDataError(self.name, f"no image with key {key!r}") from None

    def subset(self, rows: Sequence[int], name: str | None = None) -> "ImageSet":
        """A new ImageSet with the given rows, in that order."""
        rows = [int(r) for r in rows]
        return ImageSet(name or self.name, [self.keys[r] for r in rows], np.asarray(self.ids)[rows],
                        [self.paths[r] for r in rows], self.scores.iloc[rows].copy(),
                        [self.datasets[r] for r in rows])

    def category_matrix(self) -> np.ndarray:
        """(n_images, 10) float scores in :data:`CATEGORIES` order (NaN where unknown)."""
        return self.scores.loc[:, list(CATEGORIES)].to_numpy(dtype=np.float64)


# --------------------------------------------------------------------------- HED parsing

_VIEW_WEIGHT = {"fg": 1.0, "bg": 0.6, None: 0.8}
_VEHICLES = {"Vehicle", "Car", "Train", "Aircraft", "Boat", "Bicycle", "Truck", "Cart"}
_NATURE = {"Sky", "Ocean", "Mountain", "River", "Field", "Hill", "Waterfall", "Grassy-terrain", "Rocky-terrain",
           "Dirt-terrain", "Sloped-terrain", "Composite-terrain", "Uneven-terrain", "Sand", "Leaf-covered-terrain"}
_MANMADE_LAYOUT = {"Building", "Room", "Road", "Path", "Paved-terrain", "Runway", "Entrance", "Roof"}
_HIGH_COUNT = 5


def _tokenize(s: str) -> list[str]:
    return [t.strip() for t in re.findall(r"\(|\)|,|[^(),]+", s) if t.strip()]


def _parse_hed(s: str) -> list:
    """Parse a short HED string into nested lists of tag strings."""
    tokens = _tokenize(s)
    stack: list[list] = [[]]
    for t in tokens:
        if t == "(":
            stack.append([])
        elif t == ")":
            if len(stack) == 1:
                raise ValueError("unbalanced ')'")
            grp = stack.pop()
            stack[-1].append(grp)
        elif t == ",":
            continue
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise ValueError("unbalanced '('")
    return stack[0]


def _parts(tag: str) -> set[str]:
    return set(tag.split("/"))


def _group_count(group: list) -> int | None:
    """Item count given to the siblings of a group: ``Item-count/N`` or ``(Item-count, High)``."""
    for c in group:
        if isinstance(c, str) and c.startswith("Item-count/"):
            try:
                return int(c.split("/", 1)[1])
            except ValueError:
                continue
        if isinstance(c, list) and any(isinstance(x, str) and x.lower() == "item-count" for x in c):
            if any(isinstance(x, str) and x == "High" for x in c):
                return _HIGH_COUNT
    return None


def _mentions(node: list, view=None, count: int = 1, out=None) -> list[dict]:
    """Flatten the tag tree: one dict per tag with its view (fg/bg/None), item count and sibling tags."""
    out = [] if out is None else out
    gc = _group_count(node)
    if gc is not None:
        count = gc
    strs = [c for c in node if isinstance(c, str)]
    if "Foreground-view" in strs:
        view = "fg"
    elif "Background-view" in strs:
        view = "bg"
    siblings = set().union(*(_parts(s) for s in strs)) if strs else set()
    for c in node:
        if isinstance(c, list):
            _mentions(c, view, count, out)
        else:
            out.append({"tag": c, "parts": _parts(c), "view": view, "count": count, "siblings": siblings})
    return out


def hed_category_scores(hed_short: str) -> dict[str, float]:
    """Category scores in [0, 1] from one short HED string (see :data:`CATEGORIES`).

    Rules (view weight: foreground 1.0, background 0.6, unspecified 0.8):

    * faces: each ``Face`` (not ``Clock-face``) scores its view weight x 1.0
      when ``Towards``, 0.6 when ``Away-from``, 0.8 unspecified; x 0.7 for a
      crowd (``(Item-count, High)``); the maximum, +0.1 when several faces.
    * bodies: ``Body`` / ``Human`` groups, view weight (maximum).
    * people: ``Human``: view weight x (0.6 for one, 0.8 for two, 1.0 for more).
    * animals ``Animal``, food ``Ingestible-object``, vehicles (``Vehicle``,
      ``Car``, ``Train``, ``Aircraft``, ``Boat``, ``Bicycle``, ``Truck``):
      view weight (maximum); +0.1 when several items.
    * words: ``Word`` view weight, ``Character`` half of it.
    * indoor: ``Indoors`` 1.0, ``Room`` 0.8, background ``Furnishing`` 0.3
      (none when ``Outdoors``). outdoor: ``Outdoors`` 1.0, ``Urban``,
      ``Rural`` or natural landscape features 0.8.
    * places: 0.3 for an ``Indoors``/``Outdoors`` setting + 0.15 per distinct
      layout tag (``Room``, ``Building``, ``Road``, ``Urban``, ``Rural``,
      ``Sky``, ``Ocean``, ``Mountain``, terrains ...), at most 1.

    Raises
    ------
    BrainVizDataError
        When the string is not valid HED (unbalanced parentheses).
    """
    if not isinstance(hed_short, str):
        raise BrainVizDataError("HED_short", f"expected a string, got {type(hed_short).__name__}")
    try:
        tree = _parse_hed(hed_short)
    except ValueError as exc:
        raise BrainVizDataError("HED_short", f"malformed HED string ({exc}): {hed_short[:80]!r}") from None
    ms = _mentions(tree)
    scores = dict.fromkeys(CATEGORIES, 0.0)

    def best(pred, base=1.0) -> tuple[float, int]:
        vals = [(_VIEW_WEIGHT[m["view"]] * base, m["count"]) for m in ms if pred(m)]
        if not vals:
            return 0.0, 0
        return max(v for v, _ in vals), sum(c for _, c in vals)

    # faces
    face_vals, n_faces = [], 0
    for m in ms:
        if "Face" in m["parts"]:
            d = 1.0 if "Towards" in m["siblings"] else 0.6 if "Away-from" in m["siblings"] else 0.8
            crowd = 0.7 if m["count"] >= _HIGH_COUNT else 1.0
            face_vals.append(_VIEW_WEIGHT[m["view"]] * d * crowd)
            n_faces += m["count"]
    if face_vals:
        scores["faces"] = max(face_vals) + (0.1 if n_faces > 1 else 0.0)

    scores["bodies"], _ = best(lambda m: "Body" in m["parts"] or "Human" in m["parts"])
    people = [(_VIEW_WEIGHT[m["view"]], m["count"]) for m in ms if "Human" in m["parts"]]
    if people:
        n = sum(c for _, c in people)
        scores["people"] = max(v for v, _ in people) * (0.6 if n <= 1 else 0.8 if n == 2 else 1.0)
    for cat, pred in (("animals", lambda m: "Animal" in m["parts"]),
                      ("food", lambda m: "Ingestible-object" in m["parts"]),
                      ("vehicles", lambda m: bool(_VEHICLES & m["parts"]))):
        v, n = best(pred)
        scores[cat] = v + (0.1 if v and n > 1 else 0.0)
    w, _ = best(lambda m: "Word" in m["parts"])
    c, _ = best(lambda m: "Character" in m["parts"], 0.5)
    scores["words"] = max(w, c)

    all_parts = set().union(*(m["parts"] for m in ms)) if ms else set()
    outdoors = "Outdoors" in all_parts
    indoor = 1.0 if "Indoors" in all_parts else 0.8 if "Room" in all_parts else 0.0
    if not indoor and not outdoors and any("Furnishing" in m["parts"] and m["view"] == "bg" for m in ms):
        indoor = 0.3
    outdoor = 1.0 if outdoors else 0.8 if ({"Urban", "Rural"} | _NATURE) & all_parts else 0.0
    scores["indoor"], scores["outdoor"] = indoor, outdoor
    layout = (_NATURE | _MANMADE_LAYOUT | {"Urban", "Rural"}) & all_parts
    setting = 0.3 if ({"Indoors", "Outdoors"} & all_parts) else 0.0
    scores["places"] = setting + 0.15 * len(layout)
    return {k: round(float(np.clip(v, 0.0, 1.0)), 4) for k, v in scores.items()}


# --------------------------------------------------------------------------- loaders

def _read_hed_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BrainVizDataError(path, "HED tag table is missing")
    try:
        df = pd.read_csv(path, sep="\t", dtype={"File_Name": str, "HED_short": str})
    except Exception as exc:
        raise BrainVizDataError(path, f"not a readable TSV ({exc})") from None
    missing = [c for c in HED_COLUMNS if c not in df.columns]
    if missing:
        raise BrainVizDataError(path, f"missing columns {missing} (has {list(df.columns)})")
    if df["File_Name"].duplicated().any():
        raise BrainVizDataError(path, f"duplicate File_Name {df['File_Name'][df['File_Name'].duplicated()].iloc[0]!r}")
    return df


def load_nsd_shared1000(data_root: str | Path | None = None, *, expected: int | None = N_SHARED1000) -> ImageSet:
    """The 1,000 NSD shared images with HED category scores, in shared-index order.

    Keys ``nsd-XXXXX`` use the 0-based 73k NSD index (:data:`NSD_ID_CONVENTION`): the
    file name's 1-based id minus one, which must equal the TSV's 0-based ``nsd_id``. ``expected``: required number
    of images (None: any, as long as images and TSV rows agree).

    Raises
    ------
    BrainVizDataError
        Missing folder / TSV, TSV missing columns, an image without a TSV row
        (or the reverse), disagreeing ids, or an image count mismatch.
    """
    root = resolve_data_root(data_root) / NSD_SHARED1000
    img_dir = root / "images"
    if not img_dir.is_dir():
        raise BrainVizDataError(img_dir, "NSD shared1000 image folder is missing")
    tsv = root / HED_FILE
    df = _read_hed_table(tsv).set_index("File_Name")
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() == ".png")
    if expected is not None and len(files) != expected:
        raise BrainVizDataError(img_dir, f"expected {expected} images, found {len(files)}")
    if len(files) != len(df):
        raise BrainVizDataError(tsv, f"has {len(df)} rows but {img_dir} holds {len(files)} images")
    keys, ids, rows = [], [], []
    for p in files:
        m = _SHARED_NAME.match(p.name)
        if not m:
            raise BrainVizDataError(p, "image name does not follow 'sharedNNNN_nsdXXXXX.png'")
        if p.name not in df.index:
            raise BrainVizDataError(tsv, f"no row for image {p.name}")
        row = df.loc[p.name]
        nsd = int(m["nsd"])
        try:
            tsv_id = int(row["nsd_id"])
        except (TypeError, ValueError):
            raise BrainVizDataError(tsv, f"nsd_id of {p.name} is not an integer: {row['nsd_id']!r}") from None
        if tsv_id + 1 != nsd:
            raise BrainVizDataError(tsv, f"nsd_id {tsv_id} (0-based) of {p.name} disagrees with the file name's 1-based id {nsd}")
        hed = row["HED_short"] if isinstance(row["HED_short"], str) else ""
        try:
            sc = hed_category_scores(hed)
        except BrainVizDataError as exc:
            raise BrainVizDataError(tsv, f"row {p.name}: {exc.problem}") from None
        keys.append(image_key("nsd", tsv_id))  # 0-based, as the Algonauts release names its images
        ids.append(tsv_id)
        rows.append(dict(sc, tags=hed))
    scores = pd.DataFrame(rows, index=pd.Index(keys, name="image_key"), columns=list(CATEGORIES) + ["tags"])
    return ImageSet("nsd_shared1000", keys, np.asarray(ids, dtype=np.int64), files, scores, ["nsd"] * len(keys))


def load_vim1(data_root: str | Path | None = None, *, expected: int | None = N_VIM1) -> ImageSet:
    """The vim-1 (Kay et al. 2008) grayscale training images ``images/N.jpg``, N = 0, 1, ...

    Keys ``vim1-NNNNN`` with N the file number. vim-1 has no semantic
    annotations: all category scores are NaN and ``tags`` is empty.

    Raises
    ------
    BrainVizDataError
        Missing folder, badly named files, numbering gaps, or a count other than ``expected``.
    """
    img_dir = resolve_data_root(data_root) / VIM1_STIMULI / "images"
    if not img_dir.is_dir():
        raise BrainVizDataError(img_dir, "vim-1 image folder is missing")
    files = [p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")]
    nums = []
    for p in files:
        if not p.stem.isdigit():
            raise BrainVizDataError(p, "vim-1 image name is not '<number>.jpg'")
        nums.append(int(p.stem))
    order = np.argsort(nums)
    files = [files[i] for i in order]
    nums = [nums[i] for i in order]
    if expected is not None and len(files) != expected:
        raise BrainVizDataError(img_dir, f"expected {expected} images, found {len(files)}")
    if nums != list(range(len(nums))):
        missing = sorted(set(range(len(nums))) - set(nums))[:5]
        raise BrainVizDataError(img_dir, f"images are not numbered 0..{len(nums) - 1} (missing e.g. {missing})")
    keys = [image_key("vim1", n) for n in nums]
    scores = pd.DataFrame(np.nan, index=pd.Index(keys, name="image_key"), columns=list(CATEGORIES))
    scores["tags"] = ""
    return ImageSet("vim1", keys, np.asarray(nums, dtype=np.int64), files, scores, ["vim1"] * len(keys))


def image_set_for_subject(subject, data_root: str | Path | None = None) -> ImageSet:
    """The images of an :class:`~brainviz.data.algonauts.AlgonautsSubject`, training then test rows.

    Category scores come from the NSD shared1000 HED tags for NSD images that
    are among the shared 1,000 (NaN for the others, for vim-1 images and when
    the shared data is not available).
    """
    from .algonauts import parse_image_name

    paths = list(subject.train_images) + list(subject.test_images)
    parsed = [parse_image_name(p) for p in paths]
    keys = [image_key(d["dataset"], d["id"]) for d in parsed]
    scores = pd.DataFrame(np.nan, index=pd.Index(keys, name="image_key"), columns=list(CATEGORIES))
    scores["tags"] = ""
    if any(d["dataset"] == "nsd" for d in parsed):
        try:
            shared = load_nsd_shared1000(data_root).scores
        except BrainVizDataError:
            shared = None
        if shared is not None:
            known = [k for k in keys if k in shared.index]
            if known:
                scores.loc[known, :] = shared.loc[known, scores.columns].to_numpy()
    scores[list(CATEGORIES)] = scores[list(CATEGORIES)].astype(float)
    return ImageSet(subject.name, keys, np.asarray([d["id"] for d in parsed], dtype=np.int64), paths,
                    scores, [str(d["dataset"]) for d in parsed])
