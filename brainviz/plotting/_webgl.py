"""What a browser-side (WebGL) brain view needs: mesh assets sent once, small per-update payloads.

The brain view of the app (``webapp/brainview``, a Streamlit component drawing with three.js)
keeps the fsaverage5 meshes in the browser and receives, per map, only what changes. This module
builds both halves without Streamlit:

* :func:`mesh_asset` -> bytes of one surface (both hemispheres): coordinates, faces, sulcal-depth
  gray. Served as a static file and fetched once per browser (``mesh/<surface>-<digest>.bin``).
* :func:`view_payload` -> :class:`ViewPayload`: the JSON spec (colour limits, colour map, legend,
  camera preset, title, ...) and ONE binary blob with the per-vertex values (uint16-quantised) and
  per-vertex ROI labels (hover names, outlines), each section sent sparse (index + value) or dense,
  whichever is smaller. On fsaverage5 the blob is at most 2 x 20,484 x 3 bytes; a typical map of a
  few thousand challenge-space vertices is 20-40 KB.

Colours are computed in the browser with the same rule as :func:`brainviz.plotting.vertex_rgb`
(colour map or category colour times ``0.82 + 0.18 x`` normalised sulcal gray; gray where no value),
so the interactive view, the Plotly figure and the off-screen PNG agree.

Mesh asset layout (little endian): ``b"BVM1"``, uint32 header length ``n``, ``n`` bytes of JSON
header (space-padded to a multiple of 4), then the buffers the header points at (offsets from the
end of the header, 4-byte aligned)::

    {"version": 1, "surface": "inflated", "gray": [0.5, 0.8],
     "hemis": {"lh": {"n_vertices": 10242, "n_faces": 20480,
                      "coords": [offset, nbytes],        # float32 (n_vertices, 3), mm (flat: z = 0)
                      "faces": [offset, nbytes, "uint16"],  # (n_faces, 3) vertex indices
                      "shade": [offset, nbytes]},          # uint8 (n_vertices,): gray level x 255
               "rh": {...}}}

Payload blob sections (``spec["sections"][name] = {"offset", "n", "sparse", "dtype"}``; offsets in
bytes into the blob, 4-byte aligned). Vertex ids are global: ``hemi_index x 10242 + vertex`` with
``lh`` = 0, ``rh`` = 1. ``values``: uint16 ``q`` with value = ``spec["lo"] + q x spec["step"]``,
65535 = no value; ``rois`` / ``outlines``: label codes (uint8 or uint16, index into
``spec["roi_names"]`` / ``spec["outline_names"]``, max = unlabelled). A sparse section stores the
uint16 ids first, then the codes; a dense one stores one code per vertex of the shown hemispheres.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ._maps import (BACKGROUND_GRAY, DEFAULT_VIEW, HEMIS, N_FSAVERAGE5, SURFACES, VIEWS, _as_hemi_array, _meshes,
                    _mpl_cmap, background_shading, color_limits)
from ._maps import category_colors as _category_colors

__all__ = ["MESH_ASSET_VERSION", "ViewPayload", "hemisphere_offsets", "mesh_asset", "mesh_asset_name",
           "view_payload"]

#: Version of the mesh asset layout (in the file and the header).
MESH_ASSET_VERSION = 1
#: Gap between the hemispheres placed side by side (mm), as :func:`brainviz.plotting.layout_coords`.
HEMI_GAP = 8.0
_NO_VALUE = 65535


# --------------------------------------------------------------------------- mesh assets
@lru_cache(maxsize=len(SURFACES))
def mesh_asset(surface: str = "inflated") -> bytes:
    """Bytes of the mesh asset of ``surface`` (both hemispheres; layout in the module docstring)."""
    meshes = _meshes(surface)
    shade = background_shading()
    header: dict = {"version": MESH_ASSET_VERSION, "surface": surface, "gray": list(BACKGROUND_GRAY), "hemis": {}}
    buffers: list[bytes] = []
    offset = 0

    def add(buf: bytes) -> list[int]:
        nonlocal offset
        start = offset
        pad = (-len(buf)) % 4
        buffers.append(buf + b"\0" * pad)
        offset += len(buf) + pad
        return [start, len(buf)]

    for h in HEMIS:
        coords, faces = meshes[h]
        c = np.ascontiguousarray(coords, dtype="<f4").copy()
        if surface == "flat":
            c[:, 2] = 0.0
        ftype = "uint16" if len(c) < 65536 else "uint32"
        f = np.ascontiguousarray(faces, dtype="<u2" if ftype == "uint16" else "<u4")
        g = np.round(np.clip(shade[h], 0, 1) * 255).astype(np.uint8)
        header["hemis"][h] = {"n_vertices": int(len(c)), "n_faces": int(len(f)), "coords": add(c.tobytes()),
                              "faces": add(f.tobytes()) + [ftype], "shade": add(g.tobytes())}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((-len(head)) % 4)
    return b"BVM1" + struct.pack("<I", len(head)) + head + b"".join(buffers)


@lru_cache(maxsize=len(SURFACES))
def mesh_asset_name(surface: str = "inflated") -> str:
    """File name of a surface's mesh asset: ``<surface>-<first 12 hex digits of its sha1>.bin``
    (a new mesh gets a new name, so a browser never keeps a stale one)."""
    return f"{surface}-{hashlib.sha1(mesh_asset(surface)).hexdigest()[:12]}.bin"


@lru_cache(maxsize=16)
def hemisphere_offsets(surface: str, hemis: tuple[str, ...]) -> dict[str, float]:
    """x shift (mm) of each shown hemisphere: side by side with a gap, lh left (as ``layout_coords``)."""
    if len(hemis) < 2:
        return {h: 0.0 for h in hemis}
    meshes = _meshes(surface)
    return {"lh": float(-(meshes["lh"][0][:, 0].max() + HEMI_GAP / 2)),
            "rh": float(-(meshes["rh"][0][:, 0].min() - HEMI_GAP / 2))}


# --------------------------------------------------------------------------- payload
@dataclass
class ViewPayload:
    """One update of a brain view: ``spec`` (JSON-able dict) and ``blob`` (bytes, the per-vertex arrays).

    ``spec["digest"]`` identifies the map (a digest of spec and blob: the browser redraws only when it
    changes); ``token`` is what the browser reports once the map is on screen (the digest unless given).
    """

    spec: dict
    blob: bytes
    token: str
    sizes: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the update as sent: the JSON spec plus the blob."""
        return len(json.dumps(self.spec, separators=(",", ":")).encode()) + len(self.blob)


def _global_ids(hemis: Sequence[str]) -> list[tuple[str, int]]:
    return [(h, HEMIS.index(h) * N_FSAVERAGE5) for h in hemis]


def _section(codes_by_hemi: Mapping[str, np.ndarray], hemis: Sequence[str], missing: int, dtype) -> tuple[bytes, dict]:
    """Encode per-vertex codes of the shown hemispheres, sparse or dense (whichever is smaller)."""
    dt = np.dtype(dtype).newbyteorder("<")
    dense = np.concatenate([np.asarray(codes_by_hemi[h], dt) for h in hemis])
    ids = np.concatenate([np.arange(N_FSAVERAGE5) + base for _, base in _global_ids(hemis)])
    keep = dense != missing
    n = int(keep.sum())
    if n * (2 + dt.itemsize) < dense.nbytes:
        sid = ids[keep].astype("<u2")
        pad = (-sid.nbytes) % 4
        body = sid.tobytes() + b"\0" * pad + dense[keep].tobytes()
        return body, {"n": n, "sparse": True, "dtype": dt.name, "codes_at": int(sid.nbytes + pad)}
    return dense.tobytes(), {"n": int(len(dense)), "sparse": False, "dtype": dt.name, "codes_at": 0}


def _quantise(values_by_hemi: Mapping[str, np.ndarray], hemis: Sequence[str], categorical: bool):
    """uint16 codes of the values (65535 = NaN), the offset ``lo`` and ``step``: value = lo + q x step."""
    vals = {h: _as_hemi_array(values_by_hemi.get(h), h) for h in hemis}
    finite = np.concatenate([v[np.isfinite(v)] for v in vals.values()])
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    if categorical:
        if finite.size and not np.all(finite == np.round(finite)):
            raise ValueError("categorical values must be integer codes")
        step = 1.0
        if hi - lo > _NO_VALUE - 1:
            raise ValueError(f"categorical codes span {hi - lo:.0f} > {_NO_VALUE - 1}")
    else:
        step = (hi - lo) / (_NO_VALUE - 1) if hi > lo else 1.0
    out = {}
    for h, v in vals.items():
        q = np.full(N_FSAVERAGE5, _NO_VALUE, np.uint16)
        ok = np.isfinite(v)
        q[ok] = np.clip(np.round((v[ok] - lo) / step), 0, _NO_VALUE - 1).astype(np.uint16)
        out[h] = q
    return out, lo, step


_LABEL_CACHE: dict = {}


def _label_section(labels_by_hemi: Mapping[str, np.ndarray] | None, hemis: Sequence[str]):
    """(codes by hemi, names, missing code, dtype) of per-vertex label names (None / '' / NaN / 0 /
    'Unknown' = unlabelled, as :func:`brainviz.plotting.outline_vertices`), or None when nothing is labelled.

    Remembered for the same label arrays (the same objects, e.g. a cached hover-name map: the cache
    holds them, so their ids stay theirs)."""
    if not labels_by_hemi:
        return None
    arrays = tuple(labels_by_hemi.get(h) for h in hemis)
    key = (tuple(hemis), tuple(id(a) for a in arrays))
    hit = _LABEL_CACHE.get(key)
    if hit is not None and all(x is y for x, y in zip(hit[0], arrays)):
        return hit[1]
    out = _encode_labels(labels_by_hemi, hemis)
    if len(_LABEL_CACHE) >= 32:
        _LABEL_CACHE.clear()
    _LABEL_CACHE[key] = (arrays, out)
    return out


def _encode_labels(labels_by_hemi: Mapping[str, np.ndarray], hemis: Sequence[str]):
    raw = []
    for h in hemis:
        lab = labels_by_hemi.get(h)
        arr = np.full(N_FSAVERAGE5, None, dtype=object) if lab is None else np.asarray(lab, dtype=object).ravel()
        if arr.shape != (N_FSAVERAGE5,):
            raise ValueError(f"{h}: expected {N_FSAVERAGE5} labels, got {arr.shape[0]}")
        raw.append(arr)
    codes_all, uniques = pd.factorize(np.concatenate(raw), use_na_sentinel=True)  # None and NaN -> -1
    keep = [i for i, u in enumerate(uniques) if _labelled(u)]
    if not keep:
        return None
    names = [str(uniques[i]) for i in keep]
    dtype = np.uint8 if len(names) < 255 else np.uint16
    missing = int(np.iinfo(dtype).max)
    remap = np.full(len(uniques) + 1, missing, np.int64)  # last slot: the NA sentinel -1
    remap[keep] = np.arange(len(keep))
    codes = remap[codes_all].astype(dtype)
    return ({h: codes[i * N_FSAVERAGE5:(i + 1) * N_FSAVERAGE5] for i, h in enumerate(hemis)}, names, missing, dtype)


def _labelled(x) -> bool:
    """A label name (not None / NaN / '' / 'Unknown' / 0, the unlabelled marks of ``outline_vertices``)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return False
    return not (isinstance(x, str) and x in ("", "Unknown")) and not (not isinstance(x, str) and x == 0)


def _lut(cmap) -> list[str]:
    """256 ``#rrggbb`` colours of a matplotlib colour map (index round(t x 255), as ``vertex_rgb``)."""
    return list(_named_lut(cmap)) if isinstance(cmap, str) else _lut_of(cmap)


@lru_cache(maxsize=32)
def _named_lut(cmap: str) -> tuple[str, ...]:
    return tuple(_lut_of(cmap))


def _lut_of(cmap) -> list[str]:
    cm = _mpl_cmap(cmap)
    rgb = np.round(np.clip(cm(np.linspace(0, 1, 256))[:, :3], 0, 1) * 255).astype(int)
    return ["#%02x%02x%02x" % tuple(c) for c in rgb]


def view_payload(
    values_by_hemi: Mapping[str, np.ndarray],
    surface: str = "inflated",
    hemis: Sequence[str] = HEMIS,
    cmap: str = "RdBu_r",
    categorical: bool = False,
    title: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
    colorbar_title: str = "",
    category_names: Mapping | None = None,
    category_colors: Mapping | None = None,
    outlines: Mapping[str, np.ndarray] | None = None,
    rois: Mapping[str, np.ndarray] | None = None,
    labels: Mapping[str, Mapping[str, int]] | None = None,
    view: str | None = None,
    height: int = 520,
    hover_name: str = "value",
    selected=None,
    token: str | None = None,
) -> ViewPayload:
    """The update a browser brain view needs to draw a map (parameters as :func:`brainviz.plotting.brain_figure`).

    Parameters
    ----------
    values_by_hemi : ``{hemi: (10242,) float}``, NaN = no value (gray).
    outlines : ``{hemi: (10242,) labels}``: borders between labelled regions are drawn dark.
    rois : ``{hemi: (10242,) names}`` shown on hover (default: the ``outlines`` labels).
    labels : ``{hemi: {text: vertex}}`` text labels at those vertices.
    selected : a category code whose region gets a highlighted border (categorical maps).
    token : what is drawn, reported by the browser once on screen (default: a digest of the payload).

    Returns
    -------
    :class:`ViewPayload` with ``spec`` (JSON-able) and ``blob`` (bytes); ``sizes`` gives the bytes of
    each blob section.
    """
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}; choose one of {', '.join(SURFACES)}")
    hemis = tuple(h for h in HEMIS if h in hemis) or HEMIS
    if view is None or surface == "flat":
        view = "top" if surface == "flat" else DEFAULT_VIEW
    cam = VIEWS.get(view, VIEWS[DEFAULT_VIEW])
    q, lo, step = _quantise(values_by_hemi, hemis, categorical)
    spec: dict = {
        "surface": surface, "mesh": f"mesh/{mesh_asset_name(surface)}", "hemis": list(hemis),
        "offsets": hemisphere_offsets(surface, hemis), "kind": "categorical" if categorical else "continuous",
        "lo": lo, "step": step, "title": title or "", "colorbar_title": colorbar_title or "",
        "hover_name": hover_name, "height": int(height),
        "view": {"name": view, "eye": list(cam["eye"]), "up": list(cam["up"])},
        "views": {name: {"eye": list(v["eye"]), "up": list(v["up"])} for name, v in VIEWS.items()},
    }
    if categorical:
        vals = {h: _as_hemi_array(values_by_hemi.get(h), h) for h in hemis}
        cats = sorted({float(x) for v in vals.values() for x in np.unique(v[np.isfinite(v)])})
        cats = [int(c) for c in cats]
        colors = _category_colors(cats, category_colors)
        names = dict(category_names or {})
        spec["categories"] = [[c, str(names.get(c, c)), colors[c]] for c in cats]
        if selected is not None and np.isfinite(float(selected)):
            spec["selected"] = int(selected)
    else:
        if vmin is not None and vmax is not None and vmax > vmin:
            vlo, vhi = float(vmin), float(vmax)
        else:
            vlo, vhi = color_limits({h: _as_hemi_array(values_by_hemi.get(h), h) for h in hemis}, vmin, vmax)
        spec.update(vmin=vlo, vmax=vhi, lut=_lut(cmap), cmap=str(cmap) if isinstance(cmap, str) else "custom")
        if threshold is not None:
            spec["threshold"] = float(threshold)
    parts: list[bytes] = []
    sections: dict = {}
    sizes: dict = {}
    offset = 0

    def put(name: str, body: bytes, meta: dict) -> None:
        nonlocal offset
        pad = (-len(body)) % 4
        sections[name] = {"offset": offset, **meta}
        parts.append(body + b"\0" * pad)
        sizes[name] = len(body)
        offset += len(body) + pad

    put("values", *_section(q, hemis, _NO_VALUE, np.uint16))
    hover = _label_section(rois if rois is not None else outlines, hemis)
    if hover is not None:
        codes, names, missing, dt = hover
        put("rois", *_section(codes, hemis, missing, dt))
        spec["roi_names"] = names
    if outlines:
        if rois is None and hover is not None:
            spec["outline_names"] = spec["roi_names"]
            sections["outlines"] = sections["rois"]
        else:
            ol = _label_section(outlines, hemis)
            if ol is not None:
                codes, names, missing, dt = ol
                put("outlines", *_section(codes, hemis, missing, dt))
                spec["outline_names"] = names
    if labels:
        spec["labels"] = [[h, int(v), str(t)] for h in hemis for t, v in (labels.get(h) or {}).items()]
    spec["sections"] = sections
    blob = b"".join(parts)
    digest = hashlib.sha1(blob)
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    spec["digest"] = digest.hexdigest()[:16]
    token = spec["digest"] if token is None else str(token)
    spec["token"] = token
    return ViewPayload(spec=spec, blob=blob, token=str(token), sizes=sizes)
