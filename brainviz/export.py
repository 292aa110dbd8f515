"""Brain maps as GIfTI files (nibabel), the format nilearn, FreeSurfer, Connectome Workbench and
pycortex read.

Every map is written per hemisphere, named like FreeSurfer does (``lh.<name>.func.gii``,
``rh.<name>.func.gii``), with ONE value per vertex of the surface the data live on:

* ``fsaverage5`` (10,242 vertices per hemisphere): the demo brain;
* ``fsaverage`` (163,842): real Algonauts / NSD data.

Vertices outside the data (outside the challenge space, filtered out) are NaN in
functional maps and key 0 (``???``, unassigned, as in Workbench) in label maps.

* Functional maps (:func:`func_gifti`): ``.func.gii``, one float32 data array per map
  (several maps in one file = several data arrays, e.g. one per image), intent
  ``NIFTI_INTENT_ESTIMATE`` (one map) or ``NIFTI_INTENT_NONE``.
* Label maps (:func:`label_gifti`): ``.label.gii``, int32, intent ``NIFTI_INTENT_LABEL``,
  with a label table holding each label's name and colour. Code ``c`` (a cluster number,
  0..k-1) is written as key ``c + 1``; key 0 is ``???`` (no data). The label names keep
  the app's numbers (``"cluster 3: faces 9/10"``).

Metadata: ``AnatomicalStructurePrimary`` (``CortexLeft`` / ``CortexRight``) on the image and
on every data array, ``Name`` per data array, plus ``brainviz:surface`` and any extra
key/values given (e.g. ``brainviz:simulated``).

Nothing here writes XML by hand: images are built with :mod:`nibabel.gifti` and written
with nibabel's serializer ``GiftiImage.to_bytes`` (files: to a temporary file renamed into place).

Typical use::

    m = SurfaceMap.from_vertices(values, store.vertices("subj01"), surface="fsaverage5", name="t")
    paths = save_gifti(m, "out/", "faces_vs_rest")      # out/lh.faces_vs_rest.func.gii, out/rh...
    data = gifti_zip(m, "faces_vs_rest")                 # bytes of a zip with both files

Reading back (nilearn)::

    from nilearn import datasets, plotting, surface
    fs = datasets.load_fsaverage("fsaverage5")
    plotting.plot_surf_stat_map(fs["inflated"].parts["left"], surface.load_surf_data("lh.t.func.gii"))
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import BrainVizDataError
from .names import FSAVERAGE_VERTICES, HEMIS

STRUCTURE = {"lh": "CortexLeft", "rh": "CortexRight"}
UNASSIGNED = "???"


def n_surface_vertices(surface: str) -> int:
    """Vertices per hemisphere of ``surface`` ('fsaverage5', 'fsaverage', ...)."""
    try:
        return FSAVERAGE_VERTICES[surface]
    except KeyError:
        raise BrainVizDataError("surface", f"unknown surface {surface!r}; one of {sorted(FSAVERAGE_VERTICES)}") from None


def infer_surface(vertices: pd.DataFrame) -> str:
    """'fsaverage5' when every ``surface_index`` fits fsaverage5, else 'fsaverage' (a guess; prefer
    the store's ``datasets.surface``, see :func:`store_surface`)."""
    idx = vertices["surface_index"].to_numpy() if "surface_index" in vertices else vertices["fsaverage5_index"].to_numpy()
    return "fsaverage5" if len(idx) == 0 or int(np.max(idx)) < FSAVERAGE_VERTICES["fsaverage5"] else "fsaverage"


def store_surface(store, subject: str) -> str:
    """The surface ``subject``'s data live on, from the store (``subjects.dataset_id`` ->
    ``datasets.surface``); inferred from the vertex indices when the store does not say."""
    try:
        subj = store.subjects()
        ds = store.datasets()
        did = subj.loc[subj["subject"] == subject, "dataset_id"]
        surf = ds.loc[ds["dataset_id"] == did.iloc[0], "surface"] if len(did) else pd.Series(dtype=object)
        if len(surf) and str(surf.iloc[0]) in FSAVERAGE_VERTICES:
            return str(surf.iloc[0])
    except (KeyError, IndexError, AttributeError):
        pass
    return infer_surface(store.vertices(subject))


def scatter_to_surface(values, vertices: pd.DataFrame, surface: str, fill=np.nan) -> dict[str, np.ndarray]:
    """(V,) or (n_maps, V) subject values -> {hemi: (n_surface,) or (n_maps, n_surface)} on ``surface``.

    Parameters
    ----------
    values : (V,) or (n_maps, V) array, one value per challenge-space vertex in the row order of
        ``vertices`` (lh first, then rh).
    vertices : the store's vertices table of the subject (columns ``hemi``, ``surface_index``;
        ``fsaverage5_index`` is used when ``surface_index`` is absent).
    surface : the surface the data live on ('fsaverage5' or 'fsaverage').
    fill : value of vertices without data (NaN for functional maps).
    """
    arr = np.asarray(values)
    single = arr.ndim == 1
    arr = arr[None] if single else arr
    if arr.ndim != 2 or arr.shape[1] != len(vertices):
        raise BrainVizDataError("values", f"{arr.shape[-1]} values per map for {len(vertices)} vertices")
    n = n_surface_vertices(surface)
    col = "surface_index" if "surface_index" in vertices else "fsaverage5_index"
    idx = vertices[col].to_numpy().astype(np.int64)
    hemi = vertices["hemi"].to_numpy()
    if idx.size and int(idx.max()) >= n:
        raise BrainVizDataError("surface", f"vertex index {int(idx.max())} does not exist on {surface} "
                                           f"({n} vertices per hemisphere): wrong surface for these data")
    out = {}
    for h in HEMIS:
        m = (hemi == h) & (idx >= 0)
        dtype = np.result_type(arr.dtype, np.asarray(fill).dtype)
        full = np.full((arr.shape[0], n), fill, dtype=dtype)
        full[:, idx[m]] = arr[:, m]
        out[h] = full[0] if single else full
    return out


@dataclass
class SurfaceMap:
    """One or more brain maps ready for GIfTI export.

    Attributes
    ----------
    data : {hemi: (n_surface,) or (n_maps, n_surface)} values on ``surface`` (NaN = no data; label
        maps: integer codes >= 0, negative or NaN = no data). Only the hemispheres present are written.
    surface : 'fsaverage5' | 'fsaverage' | ...
    name : what the map shows (data array Name, file name stem).
    map_names : (n_maps,) names of the maps (default: ``name`` or ``name_0000``...).
    labels : {code: name} -> a label map (``.label.gii``); None -> a functional map (``.func.gii``).
    colors : {code: '#rrggbb'} label colours (labels only; missing ones get a palette colour).
    meta : extra metadata written on the image (str -> str).
    """

    data: Mapping[str, np.ndarray]
    surface: str
    name: str = "map"
    map_names: Sequence[str] | None = None
    labels: Mapping[int, str] | None = None
    colors: Mapping[int, str] | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_vertices(cls, values, vertices: pd.DataFrame, surface: str, name: str = "map", **kwargs) -> "SurfaceMap":
        """From (V,) or (n_maps, V) subject-space values and the subject's vertices table."""
        values = np.asarray(values)
        if kwargs.get("labels") is not None:
            v = np.asarray(values, dtype=np.float64)
            codes = np.where(np.isfinite(v), v, -1).astype(np.int64)
            data = scatter_to_surface(codes, vertices, surface, fill=-1)
        else:
            data = scatter_to_surface(values.astype(np.float32), vertices, surface, fill=np.float32(np.nan))
        return cls(data, surface, name, **kwargs)

    @classmethod
    def from_fsaverage5(cls, values_by_hemi: Mapping[str, np.ndarray], name: str = "map", **kwargs) -> "SurfaceMap":
        """From maps already on fsaverage5 ({hemi: (10242,)}, NaN = no data), e.g. the app's display maps."""
        data = {}
        for h, v in values_by_hemi.items():
            v = np.asarray(v, dtype=np.float64)
            if v.shape[-1] != FSAVERAGE_VERTICES["fsaverage5"]:
                raise BrainVizDataError("values", f"{h}: {v.shape[-1]} values, fsaverage5 has 10242 per hemisphere")
            data[h] = np.where(np.isfinite(v), v, -1).astype(np.int64) if kwargs.get("labels") is not None \
                else v.astype(np.float32)
        return cls(data, "fsaverage5", name, **kwargs)

    @property
    def kind(self) -> str:
        """'label' or 'func'."""
        return "label" if self.labels is not None else "func"

    @property
    def hemis(self) -> list[str]:
        return [h for h in HEMIS if h in self.data]

    def file_name(self, hemi: str, stem: str | None = None) -> str:
        """``lh.<stem>.func.gii`` / ``rh.<stem>.label.gii`` (FreeSurfer-style names)."""
        return f"{hemi}.{safe_stem(stem or self.name)}.{self.kind}.gii"

    def images(self) -> dict:
        """{hemi: nibabel GiftiImage}."""
        out = {}
        for h in self.hemis:
            if self.kind == "label":
                out[h] = label_gifti(self.data[h], self.labels, self.colors, hemi=h, surface=self.surface,
                                     name=self.name, meta=self.meta)
            else:
                out[h] = func_gifti(self.data[h], hemi=h, surface=self.surface, names=self.map_names or self.name,
                                    meta=self.meta)
        return out


def safe_stem(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, '.', '_', '-', '+')."""
    s = re.sub(r"[^A-Za-z0-9.+_-]+", "_", str(text)).strip("._")
    return s or "map"


def _meta(d: Mapping[str, str]):
    import nibabel as nib

    return nib.gifti.GiftiMetaData({str(k): str(v) for k, v in d.items()})


def _check_hemi_length(arr: np.ndarray, hemi: str, surface: str | None) -> None:
    if hemi not in HEMIS:
        raise BrainVizDataError("hemi", f"{hemi!r} is not 'lh' or 'rh'")
    if surface is not None and arr.shape[-1] != n_surface_vertices(surface):
        raise BrainVizDataError("values", f"{arr.shape[-1]} values per map; {surface} has "
                                          f"{n_surface_vertices(surface)} vertices per hemisphere")


def func_gifti(values, hemi: str, surface: str | None = None, names: str | Sequence[str] = "map",
               meta: Mapping[str, str] | None = None):
    """A functional GIfTI image: ``values`` (n_vertices,) or (n_maps, n_vertices) as float32 data arrays.

    Parameters
    ----------
    values : one value per surface vertex (NaN = no data); 2-D for several maps (one data array each).
    hemi : 'lh' | 'rh' (sets ``AnatomicalStructurePrimary``).
    surface : checked against the number of vertices and written as ``brainviz:surface``.
    names : a name for all maps (numbered when several) or one name per map.

    Returns
    -------
    nibabel.gifti.GiftiImage
    """
    import nibabel as nib

    arr = np.asarray(values, dtype=np.float32)
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2:
        raise BrainVizDataError("values", f"expected (n_vertices,) or (n_maps, n_vertices), got {arr.shape}")
    _check_hemi_length(arr, hemi, surface)
    if isinstance(names, str):
        names = [names] if len(arr) == 1 else [f"{names}_{i:04d}" for i in range(len(arr))]
    if len(names) != len(arr):
        raise BrainVizDataError("names", f"{len(names)} names for {len(arr)} maps")
    intent = "NIFTI_INTENT_ESTIMATE" if len(arr) == 1 else "NIFTI_INTENT_NONE"
    darrays = [nib.gifti.GiftiDataArray(np.ascontiguousarray(row), intent=intent, datatype="NIFTI_TYPE_FLOAT32",
                                        meta=_meta({"Name": nm, "AnatomicalStructurePrimary": STRUCTURE[hemi]}))
               for row, nm in zip(arr, names)]
    img_meta = {"AnatomicalStructurePrimary": STRUCTURE[hemi], **({"brainviz:surface": surface} if surface else {}),
                **(meta or {})}
    return nib.gifti.GiftiImage(meta=_meta(img_meta), darrays=darrays)


def _rgba(color: str | None, i: int) -> tuple[float, float, float, float]:
    from .plotting import PALETTE

    c = (color or PALETTE[i % len(PALETTE)]).lstrip("#")
    if len(c) != 6:
        raise BrainVizDataError("colors", f"colour {color!r} is not '#rrggbb'")
    return int(c[0:2], 16) / 255, int(c[2:4], 16) / 255, int(c[4:6], 16) / 255, 1.0


def label_gifti(codes, labels: Mapping[int, str], colors: Mapping[int, str] | None = None, hemi: str = "lh",
                surface: str | None = None, name: str = "labels", meta: Mapping[str, str] | None = None):
    """A label GIfTI image with a label table (names + colours).

    Parameters
    ----------
    codes : (n_vertices,) integer codes 0..K-1 (e.g. cluster numbers); negative or NaN = no data.
        Written as keys ``code + 1``; key 0 is ``???`` (unassigned, transparent).
    labels : {code: name}; every code present must have a name.
    colors : {code: '#rrggbb'}; missing codes get the app's palette colour.

    Returns
    -------
    nibabel.gifti.GiftiImage
    """
    import nibabel as nib

    v = np.asarray(codes, dtype=np.float64)
    if v.ndim != 1:
        raise BrainVizDataError("codes", f"expected (n_vertices,), got {v.shape}")
    _check_hemi_length(v, hemi, surface)
    keys = np.where(np.isfinite(v) & (v >= 0), v + 1, 0).astype(np.int32)
    present = {int(c) - 1 for c in np.unique(keys) if c > 0}
    missing = sorted(present - {int(c) for c in labels})
    if missing:
        raise BrainVizDataError("labels", f"codes {missing[:5]} have no name")
    table = nib.gifti.GiftiLabelTable()
    unassigned = nib.gifti.GiftiLabel(key=0, red=1.0, green=1.0, blue=1.0, alpha=0.0)
    unassigned.label = UNASSIGNED
    table.labels.append(unassigned)
    for i, code in enumerate(sorted(int(c) for c in labels)):
        r, g, b, a = _rgba((colors or {}).get(code), code)
        lab = nib.gifti.GiftiLabel(key=code + 1, red=r, green=g, blue=b, alpha=a)
        lab.label = str(labels[code])
        table.labels.append(lab)
    da = nib.gifti.GiftiDataArray(keys, intent="NIFTI_INTENT_LABEL", datatype="NIFTI_TYPE_INT32",
                                  meta=_meta({"Name": name, "AnatomicalStructurePrimary": STRUCTURE[hemi]}))
    img_meta = {"AnatomicalStructurePrimary": STRUCTURE[hemi], **({"brainviz:surface": surface} if surface else {}),
                "brainviz:label_keys": "key = code + 1; key 0 = ??? (no data)", **(meta or {})}
    return nib.gifti.GiftiImage(meta=_meta(img_meta), labeltable=table, darrays=[da])


def gifti_bytes(img) -> bytes:
    """The ``.gii`` file content of a GiftiImage."""
    return img.to_bytes()


def save_gifti(smap: SurfaceMap, out_dir: str | Path, stem: str | None = None) -> list[Path]:
    """Write ``lh.<stem>.<kind>.gii`` and ``rh.<stem>.<kind>.gii`` into ``out_dir`` (atomically each)."""
    out_dir = Path(out_dir)
    paths = []
    for h, img in smap.images().items():
        final = out_dir / smap.file_name(h, stem)
        with atomic_path(final, suffix=".gii") as tmp:
            tmp.write_bytes(gifti_bytes(img))  # nibabel's serializer (nib.save refuses the temp suffix)
        paths.append(final)
    return paths


def gifti_files(smap: SurfaceMap, stem: str | None = None) -> dict[str, bytes]:
    """{file name: bytes} of the map's per-hemisphere GIfTI files."""
    return {smap.file_name(h, stem): gifti_bytes(img) for h, img in smap.images().items()}


def gifti_zip(smap: SurfaceMap, stem: str | None = None, readme: str | None = None) -> bytes:
    """A zip (bytes) holding ``lh.<stem>...gii`` and ``rh.<stem>...gii`` (+ an optional README.txt)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for fname, data in gifti_files(smap, stem).items():
            z.writestr(fname, data)
        if readme:
            z.writestr("README.txt", readme)
    return buf.getvalue()


def readme_text(smap: SurfaceMap, stem: str | None = None, simulated: bool = False) -> str:
    """A short README for a downloaded map: what it is and how to open it in nilearn."""
    lh = smap.file_name("lh", stem)
    mesh = "fsaverage5" if smap.surface == "fsaverage5" else smap.surface
    lines = [f"BrainViz map: {smap.name}", f"surface: {smap.surface} ({n_surface_vertices(smap.surface)} vertices "
             "per hemisphere), one file per hemisphere (lh./rh.)"]
    if simulated:
        lines.append("SIMULATED: computed from the BrainViz demo brain (simulated responses), not real brain data.")
    if smap.kind == "label":
        lines.append("label map: key = code + 1 (cluster c -> key c + 1); key 0 = ??? (no data). Names and colours "
                     "are in the label table.")
        call = "plotting.plot_surf_roi(fs['inflated'].parts['left'], surface.load_surf_data('" + lh + "'))"
    else:
        lines.append("functional map: float32, NaN = no data.")
        call = "plotting.plot_surf_stat_map(fs['inflated'].parts['left'], surface.load_surf_data('" + lh + "'))"
    lines += ["", "Open in nilearn:", "from nilearn import datasets, plotting, surface",
              f"fs = datasets.load_fsaverage('{mesh}')", call]
    return "\n".join(lines) + "\n"
