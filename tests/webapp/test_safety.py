"""Issue 15: safe with untrusted data and honest under faults.

One section per item of the issue; every test here fails on the code before it
(8c5d345): pickles ran code, a replaced store was not seen, damaged stores raised raw
DuckDB errors, a 40-megapixel PNG was decoded in full, bad flags gave tracebacks, temp
files of killed writers stayed, paths only worked from the build folder.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from brainviz.data.algonauts import load_dataset
from brainviz.names import N_FSAVERAGE5, ROI_CLASSES
from brainviz.errors import BrainVizDataError
from brainviz.store.reader import Store
from brainviz.store.schema import SCHEMA_VERSION, TABLES, Column, Table
from brainviz.store.writer import StoreWriter
from tests.algonauts_fixtures import make_subject
from tests import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def cli(*args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "precompute", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=timeout)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The CLI's stderr: exactly one line, no traceback."""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    root = tmp_path / "ds"
    make_subject(root, n_lh=40, n_rh=50, n_surface=N_FSAVERAGE5, n_train=6, n_test=2)
    return root


# ============================================================ 1. no code execution from dataset files
class _Evil:
    """Pickles to a call of ``exec`` that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_malicious_roi_mapping_runs_nothing_and_inspect_names_it(small_dataset, tmp_path):
    marker = tmp_path / "PWNED"
    bad = small_dataset / "subj01" / "roi_masks" / "mapping_floc-faces.npy"
    with open(bad, "wb") as f:
        # the real mapping plus one entry whose unpickling calls exec(): before, inspect ran it and printed OK
        np.save(f, np.array({**ROI_CLASSES["floc-faces"], 6: _Evil(marker)}, dtype=object), allow_pickle=True)
    out = cli("inspect", str(small_dataset))
    assert out.returncode == 2 and "OK" not in out.stdout
    line = one_line_error(out)
    assert str(bad) in line and "builtins.exec" in line and "refused" in line
    with pytest.raises(BrainVizDataError, match="refused"):
        load_dataset(small_dataset)
    assert not marker.exists()


def test_real_mapping_formats_still_load(small_dataset):
    masks = small_dataset / "subj01" / "roi_masks"
    # raw pickle of the dict (accepted before too) and numpy-object .npy (as the release ships it)
    faces = {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"}
    (masks / "mapping_floc-faces.npy").write_bytes(pickle.dumps(faces, protocol=2))
    sub = load_dataset(small_dataset).subjects["subj01"]
    assert sub.roi_classes["floc-faces"].mapping == faces
    assert sub.roi_classes["floc-places"].mapping[2] == "PPA"


def test_ridge_checkpoint_with_code_is_refused(tmp_path):
    import joblib

    from brainviz.encoders.ridge import RidgeEncoder
    from brainviz.pipeline.workdir import load_model

    marker = tmp_path / "PWNED"
    path = tmp_path / "ridge-subj01.joblib"
    joblib.dump({"model": _Evil(marker)}, path)
    with pytest.raises(BrainVizDataError) as ei:
        load_model({"kind": "ridge", "checkpoint": str(path)})
    assert str(path) in str(ei.value) and not marker.exists()
    joblib.dump(np.array([_Evil(marker)], dtype=object), path)  # object arrays: unrestricted in joblib
    with pytest.raises(BrainVizDataError):
        load_model({"kind": "ridge", "checkpoint": str(path)})
    assert not marker.exists()
    rng = np.random.default_rng(0)
    good = RidgeEncoder(alphas=np.array([1.0, 10.0]), cv=2).fit(rng.standard_normal((12, 5)), rng.standard_normal((12, 3)))
    joblib.dump(good, path)
    back = load_model({"kind": "ridge", "checkpoint": str(path)})
    x = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(back.predict(x), good.predict(x))


@pytest.mark.parametrize("case", ["zero-byte", "not-an-image", "symlink-out", "wrong-type"])
def test_inspect_opens_every_image(small_dataset, tmp_path, case):
    img = sorted((small_dataset / "subj01" / "training_split" / "training_images").iterdir())[2]
    if case == "zero-byte":
        img.write_bytes(b"")
    elif case == "not-an-image":
        img.write_text("this is a text file with a .png name\n" * 20)
    elif case == "wrong-type":
        Image.new("RGB", (16, 16)).save(img, format="JPEG")
    else:
        outside = tmp_path / "elsewhere.png"
        shutil.copyfile(img, outside)
        img.unlink()
        img.symlink_to(outside)
    out = cli("inspect", str(small_dataset))
    assert out.returncode == 2 and "OK" not in out.stdout
    assert str(img) in one_line_error(out)


def test_manifest_that_is_not_an_object(small_dataset):
    (small_dataset / "manifest.json").write_text("[1, 2]")
    out = cli("inspect", str(small_dataset))
    assert out.returncode == 2
    line = one_line_error(out)
    assert "manifest.json" in line and "JSON object" in line


# ============================================================ 2. a rebuilt store is shown at once
def _small_store(path: Path, model: str) -> None:
    with StoreWriter(path) as w:
        w.add_model(model, "ridge", ["subj01"])
        w.set_meta(created_at=f"build-{model}")


def _open_fds_to(path: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            out.append(target)
    return out


def test_swap_the_file_under_a_running_reader(tmp_path):
    path = tmp_path / "brainviz.duckdb"
    _small_store(path, "old")
    store = Store(path)
    assert store.meta()["created_at"] == "build-old"
    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()
    cur = store._cursor()  # a page that is reading while the file is swapped
    assert cur.execute("SELECT model_id FROM models").fetchall() == [("old",)]

    def page_reads():
        while not stop.is_set():
            try:
                seen.update(store.models()["model_id"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    t = threading.Thread(target=page_reads, daemon=True)
    t.start()
    try:
        time.sleep(0.2)
        _small_store(path, "new")  # atomic replace, like `precompute analyze --store SAME_PATH`
        time.sleep(0.3)
        # the page opened before the swap still reads (the old version), the others see the new file
        assert cur.execute("SELECT model_id FROM models").fetchall() == [("old",)]
        assert store.meta()["created_at"] == "build-new"
        assert store.models()["model_id"].tolist() == ["new"]
        assert any("(deleted)" in f for f in _open_fds_to(path))  # still held by that page's cursor
        cur.close()
    finally:
        stop.set()
        t.join()
    assert not errors and seen == {"old", "new"}
    store.models()
    assert not any("(deleted)" in f for f in _open_fds_to(path))  # old file released
    store.close()


def test_app_store_follows_a_rebuild(tmp_path):
    from webapp import storefile as F

    path = tmp_path / "brainviz.duckdb"
    _small_store(path, "old")
    first = F.open_store(str(path), F.store_stamp(path))
    assert first.summary()["created_at"] == "build-old"
    _small_store(path, "new")
    again = F.open_store(str(path), F.store_stamp(path))  # what the next page run gets
    assert again.summary()["created_at"] == "build-new"
    assert first.summary()["models"] == ["new"]  # a page holding the first object sees it too
    assert not any("(deleted)" in f for f in _open_fds_to(path))


# ============================================================ 3. corrupt or drifted stores
@pytest.fixture(scope="module")
def good_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "brainviz.duckdb"
    with StoreWriter(path) as w:
        w.add_dataset("demo", "Demo", "/x", simulated=True, surface="fsaverage5")
        w.add_subject("subj01", "demo", "nsd", n_train=2, n_test=1, n_lh=3, n_rh=2)
        w.add_model("m", "ue_multi", ["subj01"])
        w.add_voxel_embeddings("m", "subj01", np.ones((5, 4), np.float32))
        w.add_predictions("m", "subj01", [f"nsd-{i:05d}" for i in range(400)],
                          np.random.default_rng(0).standard_normal((400, 5000)).astype(np.float32))
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def test_truncated_store(good_store, tmp_path):
    bad = _copy(good_store, tmp_path / "t.duckdb")
    os.truncate(bad, bad.stat().st_size // 2)
    with pytest.raises(BrainVizDataError) as ei:
        Store(bad)
    assert str(bad) in str(ei.value) and "truncated" in str(ei.value)


def test_drifted_store_names_every_difference(good_store, tmp_path):
    bad = _copy(good_store, tmp_path / "d.duckdb")
    con = duckdb.connect(str(bad))
    con.execute("ALTER TABLE subjects RENAME COLUMN n_lh TO n_left")
    con.execute("ALTER TABLE models ALTER kind TYPE INTEGER USING 1")
    con.execute("DROP TABLE rdms")
    con.close()
    with pytest.raises(BrainVizDataError) as ei:
        Store(bad)
    msg = str(ei.value)
    assert str(bad) in msg
    for part in ("subjects lacks column(s) n_lh", "unexpected column(s) n_left", "models.kind is INTEGER, expected VARCHAR",
                 "table rdms is missing"):
        assert part in msg


def test_validation_follows_schema_py(good_store, monkeypatch):
    """A column added to schema.py (same version) is required at once: nothing is copied by hand."""
    t = TABLES["subjects"]
    monkeypatch.setitem(TABLES, "subjects", Table(t.name, t.doc, t.columns + (Column("n_new", "SMALLINT", "x"),),
                                                  t.primary_key, t.array_column))
    with pytest.raises(BrainVizDataError, match="subjects lacks column.s. n_new"):
        Store(good_store)


def test_store_with_only_meta_says_it_is_empty(tmp_path):
    path = tmp_path / "m.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('simulated', 'false')", [str(SCHEMA_VERSION)])
    con.close()
    with pytest.raises(BrainVizDataError, match="empty") as ei:
        Store(path)
    assert str(path) in str(ei.value)


def test_sqlite_file_triggers_no_extension(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where DuckDB would install extensions
    path = tmp_path / "s.duckdb"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.commit()
    con.close()
    with pytest.raises(BrainVizDataError, match="SQLite") as ei:
        Store(path)
    assert str(path) in str(ei.value)
    assert not (tmp_path / "home").exists()


def test_store_connections_cannot_load_extensions(good_store):
    with Store(good_store) as st:
        settings = dict(st._con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoload_known_extensions', 'autoinstall_known_extensions', 'enable_external_access')").fetchall())
        assert settings == {"autoload_known_extensions": "false", "autoinstall_known_extensions": "false",
                            "enable_external_access": "false"}


def test_a_later_read_error_is_a_clear_error(good_store, tmp_path):
    bad = _copy(good_store, tmp_path / "late.duckdb")
    st = Store(bad)
    with open(bad, "r+b") as f:  # damage the data blocks after the store was opened
        f.seek(3 * 4096 + 262144)
        f.write(b"\0" * (bad.stat().st_size - 3 * 4096 - 262144))
    with pytest.raises(BrainVizDataError) as ei:
        st.predictions("m", "subj01")
    st.close()  # the test's own connection: closed, not left to the interpreter's exit
    assert str(bad) in str(ei.value) and "rebuild" in str(ei.value)


# ---- the app: one clear message on every page (not Streamlit's generic error)
APP_PAGES = ["app", "1_Voxel_clusters", "2_RDM_explorer", "3_Live_prediction", "4_Model_evaluation", "5_Decoding"]


def _app_page(name: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run(timeout=120)
    if name != "app":
        at.switch_page(f"pages/{name}.py")
        at.run(timeout=120)
    return at


def _page_message(at) -> str:
    assert not at.exception, [e.message for e in at.exception]
    return "\n".join(str(e.value) for e in list(at.error) + list(at.info))


@pytest.fixture(scope="module")
def truncated_app_store(tmp_path_factory, good_store) -> Path:
    bad = tmp_path_factory.mktemp("trunc") / "brainviz.duckdb"
    shutil.copyfile(good_store, bad)
    os.truncate(bad, bad.stat().st_size // 2)
    return bad


@pytest.mark.parametrize("name", APP_PAGES)
def test_every_page_explains_a_truncated_store(name, truncated_app_store, monkeypatch):
    monkeypatch.setenv("BRAINVIZ_STORE", str(truncated_app_store))
    msg = _page_message(_app_page(name))
    assert str(truncated_app_store) in msg and "truncated" in msg


@pytest.mark.parametrize("kind", ["meta-only", "drifted"])
def test_home_explains_empty_and_drifted_stores(kind, tmp_path, good_store, monkeypatch):
    path = tmp_path / "brainviz.duckdb"
    if kind == "meta-only":
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    else:
        shutil.copyfile(good_store, path)
        con = duckdb.connect(str(path))
        con.execute("ALTER TABLE subjects RENAME COLUMN n_rh TO n_right")
    con.close()
    monkeypatch.setenv("BRAINVIZ_STORE", str(path))
    at = _app_page("app")
    msg = _page_message(at)
    assert str(path) in msg and ("empty" in msg if kind == "meta-only" else "n_right" in msg)
    assert "REAL data" not in "\n".join(str(e.value) for e in at.info)


def test_a_read_error_inside_a_page_is_one_clear_message(app_store, monkeypatch):
    """A read failing after the store opened (a damaged block) is shown as one message, not a traceback."""
    monkeypatch.setenv("BRAINVIZ_STORE", str(app_store))

    def broken(self, *a, **k):
        raise BrainVizDataError(self.path, "cannot read the store (IO Error: Could not read enough bytes)")

    monkeypatch.setattr(Store, "list_rdms", broken)
    at = _app_page("2_RDM_explorer")
    msg = _page_message(at)
    assert str(app_store) in msg and "Could not read enough bytes" in msg


# ============================================================ 4. memory per upload
def _flat_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (128, 128, 128)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def test_worst_case_png_is_rejected_before_decoding():
    import resource

    from brainviz import live as L

    data = _flat_png(7300, 5440)  # 39.7 MP in ~120 KB: accepted and fully decoded (~330 MB) before
    assert len(data) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(L.ImageValidationError) as ei:
        L.validate_image(data, name="worst.png")
    msg = str(ei.value)
    assert "7300 x 5440 px = 39.7 megapixels" in msg and "the limit is 16 megapixels" in msg
    assert time.perf_counter() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: nothing decoded


def test_ten_simultaneous_uploads_are_bounded(monkeypatch):
    from brainviz import live as L

    active, peak = [0], [0]
    lock = threading.Lock()
    real_load = Image.Image.load

    def counting_load(self):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.05)
            return real_load(self)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(Image.Image, "load", counting_load)
    data = _flat_png(3000, 2000)
    out = [None] * 10

    def work(i):
        out[i] = L.validate_image(data).size

    ts = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert out == [(1024, 683)] * 10
    assert peak[0] <= L.DECODE_SLOTS


def test_size_messages_use_the_units_of_the_limit():
    from brainviz import live as L

    with pytest.raises(L.ImageValidationError) as ei:
        L.validate_image(b"\x89PNG" + b"\0" * (25 * L.MB + 1))
    assert "the file is 25.1 MB; the limit is 25 MB" in str(ei.value)
    with pytest.raises(L.ImageValidationError) as ei:
        L.validate_image(_flat_png(4000, 4001))
    assert "16.004 megapixels; the limit is 16 megapixels" in str(ei.value)
    streamlit_mb = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert L.MAX_BYTES == streamlit_mb * L.MB  # Streamlit counts maxUploadSize in MiB


def test_exif_rotation_is_noted_with_the_rotated_size():
    from brainviz import live as L

    exif = Image.Exif()
    exif[0x0112] = 6  # camera held upright: stored 300 x 100, shown 100 x 300
    buf = io.BytesIO()
    Image.new("RGB", (300, 100), (200, 10, 10)).save(buf, format="JPEG", exif=exif.tobytes())
    img = L.validate_image(buf.getvalue())
    assert img.size == (100, 300)
    assert img.info["brainviz_source"]["size"] == (100, 300)
    assert any("rotated 90°" in n and "100 x 300" in n for n in img.info["brainviz_notes"])
    with pytest.raises(L.ImageValidationError, match="10 x 30 px"):
        buf = io.BytesIO()
        Image.new("RGB", (30, 10)).save(buf, format="JPEG", exif=exif.tobytes())
        L.validate_image(buf.getvalue())


# ============================================================ 5. the command line fails early and clearly
@pytest.mark.parametrize("ue, fragment", [
    ("{n_epochs: 3", "not valid JSON"),
    ('{"n_epoch": 5}', "unknown setting 'n_epoch' (did you mean 'n_epochs'?)"),
    ("[1,2]", "expected a JSON object"),
    ('{"n_epochs": "3"}', "n_epochs must be an integer"),
])
def test_bad_ue_fails_before_any_work(ue, fragment, tmp_path):
    work = tmp_path / "work"
    t0 = time.perf_counter()
    out = cli("train", "--ue", ue, "--work-dir", str(work), "--cache-dir", str(tmp_path / "cache"),
              "--dataset", str(tmp_path / "none"))
    assert out.returncode == 2 and time.perf_counter() - t0 < 30
    line = one_line_error(out)
    assert line.startswith("error: --ue:") and fragment in line
    assert not (work / "models").exists()


def test_analyze_into_a_folder_fails_at_once(tmp_path):
    (tmp_path / "store_dir").mkdir()
    out = cli("analyze", "--store", str(tmp_path / "store_dir"), "--work-dir", str(tmp_path / "w"),
              "--dataset", str(tmp_path / "none"))
    assert out.returncode == 2
    line = one_line_error(out)
    assert str(tmp_path / "store_dir") in line and "is a folder" in line


def test_unwritable_work_folder_fails_at_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("features", "--work-dir", str(blocker / "work"), "--dataset", str(tmp_path / "none"))
    assert out.returncode == 2
    assert str(blocker / "work") in one_line_error(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_store_folder_fails_at_once(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        out = cli("analyze", "--store", str(ro / "s.duckdb"), "--work-dir", str(tmp_path / "w"))
    finally:
        ro.chmod(0o755)
    assert out.returncode == 2 and "not writable" in one_line_error(out)


def test_os_errors_are_one_line_exit_2(monkeypatch, capsys):
    from precompute import cli as C

    def boom(args):
        raise PermissionError(13, "Permission denied", "/data/brainviz.duckdb")

    monkeypatch.setattr(C, "_cmd_inspect", boom)
    assert C.main(["inspect", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: /data/brainviz.duckdb: Permission denied"]


_SLOW_WRITER = r"""
import sys, time
from pathlib import Path
from precompute import cli
from brainviz.store.writer import StoreWriter

def slow(args):
    with StoreWriter(sys.argv[1]) as w:
        w.add_model("m", "ridge", ["subj01"])
        print(w.tmp_path, flush=True)
        time.sleep(60)

cli._cmd_inspect = slow
sys.exit(cli.main(["inspect", "x"]))
"""


def _start_writer(store: Path) -> tuple[subprocess.Popen, Path]:
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(store)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    tmp = Path(p.stdout.readline().strip())
    assert tmp.exists() and str(p.pid) in tmp.name  # the temp file names its writer
    return p, tmp


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    store = tmp_path / "brainviz.duckdb"
    p, tmp = _start_writer(store)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert not tmp.exists() and sorted(os.listdir(tmp_path)) == []


def test_temp_files_of_a_killed_writer_are_swept_by_the_next_run(tmp_path):
    store = tmp_path / "brainviz.duckdb"
    p, tmp = _start_writer(store)
    p.kill()
    p.wait(timeout=30)
    Path(str(tmp) + ".wal").write_bytes(b"x" * 1000)  # what DuckDB leaves mid-write
    live = tmp_path / f".brainviz.duckdb.{os.getpid()}.abcdefgh.tmp"  # a writer still running: kept
    live.write_bytes(b"x")
    assert tmp.exists()
    _small_store(store, "next")
    assert sorted(os.listdir(tmp_path)) == sorted(["brainviz.duckdb", live.name])


# ============================================================ 6. portability
def test_moved_store_finds_images_and_checkpoints(tmp_path, monkeypatch):
    proj = tmp_path / "project"
    (proj / "data" / "images").mkdir(parents=True)
    (proj / "data" / "work" / "models").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(proj / "data" / "images" / "nsd-00001.png")
    (proj / "data" / "work" / "models" / "ue.pt").write_bytes(b"x")
    monkeypatch.chdir(proj)  # built from the project folder with relative paths, as precompute does
    with StoreWriter(proj / "data" / "brainviz.duckdb") as w:
        w.add_images(["nsd-00001"], ["data/images/nsd-00001.png"])
        w.add_model("ue_multi", "ue_multi", ["subj01"], checkpoint_path="data/work/models/ue.pt")
    moved = tmp_path / "elsewhere" / "project2"
    moved.parent.mkdir()
    shutil.move(proj, moved)
    monkeypatch.chdir(tmp_path)  # started from another folder
    with Store(moved / "data" / "brainviz.duckdb") as st:
        img = st.images()["path"].iloc[0]
        ck = st.models()["checkpoint_path"].iloc[0]
    assert Path(img).is_file() and Path(img) == moved / "data" / "images" / "nsd-00001.png"
    assert Path(ck).is_file() and Path(ck) == moved / "data" / "work" / "models" / "ue.pt"


def test_registry_checkpoints_survive_a_moved_work_folder(tmp_path):
    from types import SimpleNamespace

    from brainviz.pipeline.workdir import load_registry, save_registry

    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "models" / "ridge-subj01.joblib").write_bytes(b"x")
    save_registry(SimpleNamespace(work=work), {"ridge-subj01": {
        "kind": "ridge", "subjects": ["subj01"], "checkpoint": str(work / "models" / "ridge-subj01.joblib")}})
    assert json.loads((work / "models" / "registry.json").read_text())["ridge-subj01"]["checkpoint"] == "ridge-subj01.joblib"
    shutil.move(work, tmp_path / "moved")
    reg = load_registry(SimpleNamespace(work=tmp_path / "moved"))
    assert Path(reg["ridge-subj01"]["checkpoint"]).is_file()


def test_streamlit_listens_on_localhost_only():
    conf = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert conf["server"]["address"] == "127.0.0.1"
