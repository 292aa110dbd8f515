"""The browser brain view: mesh assets, per-update payloads (brainviz.plotting._webgl) and the
Streamlit glue (webapp.brainview). The drawing itself is checked in a real browser by
tests/webapp/test_browser.py."""
from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest

from brainviz import plotting as B
from brainviz.data.surfaces import load_meshes

N = B.N_FSAVERAGE5
#: Per-update payload bound on fsaverage5 (issue 30): 100 KB.
BOUND = 100 * 1024


# --------------------------------------------------------------------------- decoders (as data.js)
def parse_mesh(buf: bytes) -> dict:
    assert buf[:4] == b"BVM1"
    (n,) = struct.unpack("<I", buf[4:8])
    head = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {"header": head}
    for h, m in head["hemis"].items():
        co, cn = m["coords"]
        fo, fn, ft = m["faces"]
        so, sn = m["shade"]
        assert co % 4 == 0 and fo % 4 == 0
        out[h] = (np.frombuffer(buf[base + co: base + co + cn], "<f4").reshape(-1, 3),
                  np.frombuffer(buf[base + fo: base + fo + fn], "<u2" if ft == "uint16" else "<u4").reshape(-1, 3),
                  np.frombuffer(buf[base + so: base + so + sn], np.uint8))
    return out


def decode_section(blob: bytes, sec: dict, hemis, missing) -> np.ndarray:
    dt = np.dtype(sec["dtype"]).newbyteorder("<")
    out = np.full(2 * N, missing, np.int64)
    o = sec["offset"]
    assert o % 4 == 0
    if sec["sparse"]:
        ids = np.frombuffer(blob[o: o + 2 * sec["n"]], "<u2")
        codes = np.frombuffer(blob[o + sec["codes_at"]: o + sec["codes_at"] + dt.itemsize * sec["n"]], dt)
        out[ids] = codes
    else:
        codes = np.frombuffer(blob[o: o + dt.itemsize * sec["n"]], dt)
        for i, h in enumerate(hemis):
            out[B.HEMIS.index(h) * N: (B.HEMIS.index(h) + 1) * N] = codes[i * N:(i + 1) * N]
    return out


def decode_values(p) -> np.ndarray:
    q = decode_section(p.blob, p.spec["sections"]["values"], p.spec["hemis"], 65535)
    return np.where(q == 65535, np.nan, p.spec["lo"] + q * p.spec["step"])


def decode_labels(p, name: str, names_key: str) -> np.ndarray:
    sec = p.spec["sections"][name]
    missing = 255 if sec["dtype"] == "uint8" else 65535
    codes = decode_section(p.blob, sec, p.spec["hemis"], missing)
    names = np.array(p.spec[names_key] + [None], dtype=object)
    return names[np.where(codes == missing, len(names) - 1, codes)]


def _map(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = {}
    for h in B.HEMIS:
        a = np.full(N, np.nan)
        a[:n] = rng.normal(size=n)
        out[h] = a
    return out


# --------------------------------------------------------------------------- mesh assets
@pytest.mark.parametrize("surface", B.SURFACES)
def test_mesh_asset_holds_the_meshes_and_shading(surface):
    m = parse_mesh(B.mesh_asset(surface))
    assert m["header"]["surface"] == surface and m["header"]["version"] == 1
    shade = B.background_shading()
    for h in B.HEMIS:
        coords, faces, gray = m[h]
        ref = load_meshes(surface)[h]
        want = np.array(ref.coordinates, np.float32)
        if surface == "flat":
            want[:, 2] = 0
        np.testing.assert_array_equal(coords, want)
        np.testing.assert_array_equal(faces, ref.faces)
        assert np.abs(gray / 255 - shade[h]).max() <= 0.5 / 255 + 1e-6
    assert B.mesh_asset_name(surface).startswith(f"{surface}-") and B.mesh_asset_name(surface).endswith(".bin")


def test_hemisphere_offsets_place_the_hemispheres_side_by_side():
    from brainviz.plotting._webgl import hemisphere_offsets

    for surface in B.SURFACES:
        off = hemisphere_offsets(surface, ("lh", "rh"))
        ref = B.layout_coords(surface)
        for h in B.HEMIS:
            np.testing.assert_allclose(load_meshes(surface)[h].coordinates[:, 0] + off[h], ref[h][:, 0], atol=1e-4)
        assert hemisphere_offsets(surface, ("rh",)) == {"rh": 0.0}


# --------------------------------------------------------------------------- payloads
def test_continuous_payload_round_trips_within_the_quantisation_step():
    vals = _map()
    rois = {h: np.where(np.arange(N) < 1500, "FFA-1", np.where(np.arange(N) < 2500, "V1v", None)).astype(object)
            for h in B.HEMIS}
    p = B.view_payload(vals, cmap="RdBu_r", vmin=-2, vmax=2, threshold=0.5, outlines=rois, title="t",
                       colorbar_title="r", hover_name="r")
    got = decode_values(p)
    want = np.concatenate([vals[h] for h in B.HEMIS])
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.abs(got[ok] - want[ok]).max() <= p.spec["step"] / 2 + 1e-9
    assert p.spec["vmin"] == -2 and p.spec["vmax"] == 2 and p.spec["threshold"] == 0.5
    assert len(p.spec["lut"]) == 256 and p.spec["lut"][0] != p.spec["lut"][-1]
    lab = decode_labels(p, "rois", "roi_names")
    assert list(lab[:3]) == ["FFA-1"] * 3 and lab[2000] == "V1v" and lab[N + 2000] == "V1v" and lab[3000] is None
    assert p.spec["outline_names"] == p.spec["roi_names"]  # outlines double as hover names: sent once
    assert p.spec["sections"]["values"]["sparse"]  # 6,000 of 20,484 vertices: index + value is smaller
    assert p.nbytes < 45_000  # 24 KB values, 15 KB hover names, ~4 KB JSON (256-colour LUT, camera presets)


def test_categorical_payload_is_exact_and_names_the_categories():
    vals = {h: np.where(np.arange(N) < 4000, np.arange(N) % 7, np.nan).astype(float) for h in B.HEMIS}
    p = B.view_payload(vals, categorical=True, category_names={0: "faces"}, category_colors={1: "#000000"},
                       selected=3)
    assert np.array_equal(decode_values(p), np.concatenate([vals[h] for h in B.HEMIS]), equal_nan=True)
    cats = {c: (name, col) for c, name, col in p.spec["categories"]}
    assert sorted(cats) == list(range(7)) and cats[0][0] == "faces" and cats[1][1] == "#000000"
    assert p.spec["selected"] == 3 and "lut" not in p.spec
    with pytest.raises(ValueError, match="integer"):
        B.view_payload({"lh": np.full(N, 0.5)}, categorical=True)


def test_one_hemisphere_dense_and_flat():
    vals = {h: np.linspace(-1, 1, N) for h in B.HEMIS}  # every vertex has a value: dense is smaller
    p = B.view_payload(vals, hemis=("rh",), surface="flat", view="lateral (left)")
    assert p.spec["hemis"] == ["rh"] and not p.spec["sections"]["values"]["sparse"]
    got = decode_values(p)
    assert np.isnan(got[:N]).all() and np.abs(got[N:] - vals["rh"]).max() <= p.spec["step"]
    assert p.spec["view"]["name"] == "top" and p.spec["mesh"] == f"mesh/{B.mesh_asset_name('flat')}"


def test_payload_is_bounded_on_fsaverage5():
    """The worst case: a value on every vertex of both hemispheres, hover names and other outline labels
    on every vertex (fewer than 255 names each, as every ROI class of the app)."""
    rng = np.random.default_rng(1)
    vals = {h: rng.normal(size=N) for h in B.HEMIS}
    rois = {h: np.array([f"roi{i % 200}" for i in range(N)], dtype=object) for h in B.HEMIS}
    outl = {h: np.array([f"class{i % 40}" for i in range(N)], dtype=object) for h in B.HEMIS}
    labels = {h: {f"roi{i}": i for i in range(40)} for h in B.HEMIS}
    p = B.view_payload(vals, rois=rois, outlines=outl, labels=labels, title="x" * 200, colorbar_title="t")
    assert p.nbytes <= BOUND, p.sizes
    assert p.sizes["values"] == 2 * 2 * N  # dense uint16


def test_digest_follows_the_map_and_the_token_is_the_callers():
    a = B.view_payload(_map(seed=0))
    assert B.view_payload(_map(seed=0)).spec["digest"] == a.spec["digest"] == a.token
    assert B.view_payload(_map(seed=1)).spec["digest"] != a.spec["digest"]
    assert B.view_payload(_map(seed=0), title="other").spec["digest"] != a.spec["digest"]
    t = B.view_payload(_map(seed=0), token="img|subj01")
    assert t.token == t.spec["token"] == "img|subj01" and t.spec["digest"] == a.spec["digest"]


def test_payload_of_the_app_fixture_maps(app_store):
    """Real pages' maps on the fixture store (2 x ~1,000 vertices): a few KB to a few tens of KB."""
    from brainviz.store.reader import Store
    from webapp import viewmodel as V
    from webapp.brainview import hover_rois

    store = Store(app_store)
    try:
        v = store.vertices("subj01")
        lab = store.cluster_labels("ue_multi", "joint", 5, "subj01").astype(float)
        lab[lab < 0] = np.nan
        maps = V.to_fsaverage5(lab, v, categorical=True)
        outlines = V.label_map(v, "roi_faces")
        p = B.view_payload(maps, categorical=True, outlines=outlines, rois=hover_rois(v),
                           labels=B.roi_label_positions(outlines))
        assert p.nbytes < 30_000, p.sizes
        assert set(p.spec["categories"][i][0] for i in range(len(p.spec["categories"]))) <= set(range(5))
    finally:
        store.close()


# --------------------------------------------------------------------------- webapp glue
def test_hover_rois_joins_every_roi_of_a_vertex():
    from webapp.brainview import hover_rois

    v = pd.DataFrame({"hemi": ["lh", "lh", "rh", "rh"], "fsaverage5_index": [3, 4, 5, -1],
                      "roi_faces": ["FFA-1", None, None, "OFA"], "roi_streams": ["ventral", "ventral", None, None]})
    r = hover_rois(v)
    assert r["lh"][3] == "FFA-1 · ventral" and r["lh"][4] == "ventral" and r["rh"][5] is None
    assert sum(x is not None for x in r["rh"]) == 0 and r["lh"].shape == (N,)


def test_selected_category():
    from webapp.brainview import selected_category

    assert selected_category({"category": 2}, [0, 1, 2]) == 2
    assert selected_category({"category": 7}, [0, 1, 2]) is None  # a gray code (not clustered)
    assert selected_category({"category": None}, [0]) is None and selected_category(None, [0]) is None


def test_mesh_files_are_written_once_beside_the_bundle(tmp_path, monkeypatch):
    import webapp.brainview as BV

    assert (BV.DIST / "index.html").is_file() and (BV.DIST / "brainview.js").is_file()
    monkeypatch.setattr(BV, "asset_root", lambda: tmp_path)
    BV.ensure_mesh_file.cache_clear()
    try:
        p = BV.ensure_mesh_file("pial")
        assert p == tmp_path / "mesh" / B.mesh_asset_name("pial") and p.read_bytes() == B.mesh_asset("pial")
    finally:
        BV.ensure_mesh_file.cache_clear()


def test_bundle_is_the_build_of_the_sources(tmp_path):
    """The shipped bundle is what `npm run build` makes of src/ (skipped where Node or the packages are missing:
    the app itself needs neither)."""
    import shlex
    import shutil
    import subprocess

    import webapp.brainview as BV

    assert (BV.DIST / "index.html").read_text() == (BV.FRONTEND / "public" / "index.html").read_text()
    esbuild = BV.FRONTEND / "node_modules" / ".bin" / "esbuild"
    if not shutil.which("node") or not esbuild.exists():
        pytest.skip("node / node_modules missing (cd webapp/brainview/frontend && npm ci)")
    build = json.loads((BV.FRONTEND / "package.json").read_text())["scripts"]["build"].split("&&")[0]
    args = shlex.split(build.replace("dist/brainview.js", str(tmp_path / "brainview.js")))
    subprocess.run([str(esbuild), *args[1:]], cwd=BV.FRONTEND, check=True, capture_output=True)
    assert (tmp_path / "brainview.js").read_bytes() == (BV.DIST / "brainview.js").read_bytes(), \
        "dist/brainview.js is stale: cd webapp/brainview/frontend && npm run build"


def test_pages_draw_brain_views_and_plotly_on_request(app_store, monkeypatch):
    """Every brain of the Model evaluation page is a brain view; ``?brain=plotly`` (the benchmarks' reference)
    draws the Plotly figure of before instead."""
    from streamlit.testing.v1 import AppTest

    from tests.apptest import HOME, brains

    monkeypatch.setenv("BRAINVIZ_STORE", str(app_store))

    def page(query: dict):
        at = AppTest.from_file(HOME, default_timeout=120)
        at.run()
        at.switch_page("pages/4_Model_evaluation.py")
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    at = page({})
    assert brains(at) == 1
    (view,) = [e for e in at.get("component_instance") if e.proto.component_name.endswith("brainview")]
    spec = json.loads(view.proto.json_args)["spec"]
    assert spec["mesh"].startswith("mesh/inflated-") and spec["kind"] == "continuous" and "SIMULATED" in spec["title"]
    blob = [a.bytes for a in view.proto.special_args if a.key == "blob"][0]
    assert 0 < len(blob) + len(view.proto.json_args) <= BOUND
    n_plotly = len(at.get("plotly_chart"))
    ref = page({"brain": "plotly"})
    assert brains(ref) == 0 and len(ref.get("plotly_chart")) == n_plotly + 1


def test_without_the_built_frontend_the_page_says_so_and_draws_plotly(app_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    import webapp.brainview as BV
    from tests.apptest import HOME, brains

    monkeypatch.setenv("BRAINVIZ_STORE", str(app_store))
    monkeypatch.setattr(BV, "_component", lambda: None)
    at = AppTest.from_file(HOME, default_timeout=120)
    at.run()
    at.switch_page("pages/4_Model_evaluation.py")
    at.run()
    assert not at.exception and brains(at) == 0
    assert any("brain view is not installed" in w.value and "npm run build" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) >= 2  # the map (Plotly) and the histogram
