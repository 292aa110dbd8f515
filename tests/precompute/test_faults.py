"""Issue 25 (nothing lost, nothing run, nothing unbounded) and issue 24 item 7 (no false "truncated").

One section per item of issue 25; every test here fails on the code before it (b03dc78):
`predict --out` replaced a user's folder, table names read from a store file became SQL,
uploads were unbounded per set and session, damaged zips crashed, Ctrl-C during parallel
training aborted natively, `--ue` took infinite values, whole files were read before their
size was checked, a store whose writer had dropped a big table was called truncated, and a
stopped `precompute` run trained every finished model again.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from brainviz import insilico as I
from brainviz.errors import BrainVizDataError
from brainviz.names import N_FSAVERAGE5
from brainviz.store.reader import Store
from brainviz.store.schema import SCHEMA_VERSION
from brainviz.store.writer import StoreWriter
from precompute.cli import main
from tests.algonauts_fixtures import make_subject
from tests import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "precompute", *args], capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=timeout)


def one_line_error(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _png(size=(64, 64), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _noise_png(seed: int = 0, side: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults_store") / "brainviz.duckdb"
    with StoreWriter(path) as w:
        w.add_dataset("demo", "Demo", "/x", simulated=True, surface="fsaverage5")
        w.add_subject("subj01", "demo", "nsd", n_train=2, n_test=1, n_lh=3, n_rh=2)
        w.add_model("m", "ue_multi", ["subj01"])
        w.add_predictions("m", "subj01", [f"nsd-{i:05d}" for i in range(400)],
                          np.random.default_rng(0).standard_normal((400, 5000)).astype(np.float32))
    return path


# ============================================================ issue 24.7: no false "truncated"
def _free_blocks_cut_from_the_end(src: Path, dst: Path) -> Path:
    """A valid store whose writer added a big table, checkpointed, dropped it and checkpointed again:
    DuckDB cuts the freed blocks from the file's end, its total_blocks still counts them."""
    shutil.copyfile(src, dst)
    con = duckdb.connect(str(dst))
    con.execute("CREATE TABLE scratch AS SELECT range AS i, random() AS x FROM range(3000000)")
    con.execute("CHECKPOINT")
    con.execute("DROP TABLE scratch")
    con.execute("CHECKPOINT")
    con.close()
    return dst


def test_store_whose_writer_dropped_a_big_table_is_not_called_truncated(small_store, tmp_path):
    path = _free_blocks_cut_from_the_end(small_store, tmp_path / "dropped.duckdb")
    probe = duckdb.connect(":memory:")
    probe.execute(f"ATTACH '{path}' AS s (READ_ONLY)")
    block, total, free = probe.execute("SELECT block_size, total_blocks, free_blocks FROM pragma_database_size() "
                                       "WHERE database_name = 's'").fetchone()
    probe.close()
    assert free > 0 and path.stat().st_size < 3 * 4096 + block * total  # the old check's false alarm
    with Store(path) as st:  # before: "the store file is truncated (9,711,616 bytes, its database needs ...)"
        assert st.predictions("m", "subj01").shape == (400, 5000)
        assert st.summary()["rows"]["predictions"] == 400


def test_truly_truncated_store_is_still_named(small_store, tmp_path):
    for frac in (0.5, 0.9):
        bad = tmp_path / f"cut{frac}.duckdb"
        shutil.copyfile(small_store, bad)
        os.truncate(bad, int(bad.stat().st_size * frac))
        with pytest.raises(BrainVizDataError) as ei:
            Store(bad)
        assert str(bad) in str(ei.value) and "truncated" in str(ei.value)


def test_meta_only_store_with_freed_blocks_says_empty_not_truncated(tmp_path):
    path = tmp_path / "m.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    con.execute("CHECKPOINT")
    con.execute("CREATE TABLE scratch AS SELECT range AS i, random() AS x FROM range(3000000)")
    con.execute("CHECKPOINT")
    con.execute("DROP TABLE scratch")
    con.execute("CHECKPOINT")
    con.close()
    with pytest.raises(BrainVizDataError) as ei:
        Store(path)  # before: "the store file is truncated (798,720 bytes, its database needs 22,032,384)"
    assert "empty" in str(ei.value) and "truncated" not in str(ei.value)


# ============================================================ 2. SQL from a store file never runs
def test_table_names_from_the_file_never_become_sql(small_store, tmp_path):
    path = tmp_path / "inject.duckdb"
    shutil.copyfile(small_store, path)
    name = 'meta"; CREATE TABLE memory.main.pwned AS SELECT 42 AS v; SELECT count(*) FROM "meta'
    quoted = '"' + name.replace('"', '""') + '"'
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE {quoted} (a INTEGER)")
    con.execute(f"INSERT INTO {quoted} VALUES (1)")
    con.close()
    with Store(path) as st:  # the extra table is not the schema's: never read
        ran = st._con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'memory' "
                              "AND table_name = 'pwned'").fetchone()[0]
        assert ran == 0  # before: 1 (the statement after the name ran on open)
        assert name not in st.summary()["rows"]


# ============================================================ 8. a store open for writing elsewhere
def test_store_open_for_writing_elsewhere_is_named_as_such(small_store, tmp_path):
    path = tmp_path / "busy.duckdb"
    shutil.copyfile(small_store, path)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(path)],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(BrainVizDataError) as ei:
            Store(path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    msg = str(ei.value)
    assert "open for writing" in msg and f"PID {holder.pid}" in msg and "rebuild" not in msg
    Store(path).close()  # readable again once the writer is gone


# ============================================================ 1. predict --out never deletes a user's folder
def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"img{i}.png").write_bytes(_noise_png(i))
    return folder


def test_predict_refuses_a_users_folder_that_holds_a_summary_json(app_store, tmp_path, capsys):
    imgs = _images(tmp_path / "imgs")
    proj = tmp_path / "thesis"
    (proj / "analysis").mkdir(parents=True)
    (proj / "figures").mkdir()
    files = {"summary.json": '{"my": "notes"}', "thesis.tex": "\\chapter{keep}",
             "analysis/results.csv": "a,b\n1,2\n", "figures/f1.svg": "<svg/>"}
    for rel, text in files.items():
        (proj / rel).write_text(text)
    rc = main(["predict", "--images", str(imgs), "--out", str(proj), "--store", str(app_store), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2  # before: 0, and the folder was replaced
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(proj) in line and "did not write" in line
    for rel, text in files.items():
        assert (proj / rel).read_text() == text


def test_predict_replaces_only_its_own_output(app_store, tmp_path, capsys):
    imgs = _images(tmp_path / "imgs")
    out = tmp_path / "out"
    args = ["predict", "--images", str(imgs), "--out", str(out), "--store", str(app_store), "--no-progress"]
    assert main(args) == 0
    marker = json.loads((out / ".brainviz-predict.json").read_text())
    assert set(marker["files"]) == {p.name for p in out.iterdir()} - {".brainviz-predict.json"}
    assert main(args) == 0  # its own output: replaced
    (out / "my_notes.txt").write_text("keep me")  # the user added a file to an earlier output
    capsys.readouterr()
    assert main(args) == 2
    assert "my_notes.txt" in capsys.readouterr().err
    assert (out / "my_notes.txt").read_text() == "keep me" and (out / "predictions.npy").is_file()


# ============================================================ 3. uploads are bounded per set and session
def _empty_members_zip(n: int) -> bytes:
    """A zip of ``n`` empty members, written fast (stored, no data)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in range(n):
            z.writestr(f"e{i:06d}.png", b"")
    return buf.getvalue()


def test_a_zip_with_200000_members_is_refused_from_its_end_record():
    data = _empty_members_zip(200_000)
    tracemalloc.start()
    t0 = time.perf_counter()
    entries, problems = I.image_entries_from_uploads([("many.zip", data)])
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert entries == [] and len(problems) == 1  # before: 200,000 listed entries, ~250 MB, many seconds
    assert problems[0][0] == "many.zip" and "200,000 members" in problems[0][1] and "limit" in problems[0][1]
    assert seconds < 1.0 and peak < 20 * 2**20, (seconds, peak)


def test_upload_set_bytes_are_bounded(monkeypatch):
    monkeypatch.setattr(I, "MAX_SET_BYTES", 3 * len(_png()))
    files = [(f"f{i}.png", _png(color=(i, 0, 0))) for i in range(5)]
    entries, problems = I.image_entries_from_uploads(files, max_bytes=I.MAX_SET_BYTES)
    assert [e.name for e in entries] == ["f0.png", "f1.png", "f2.png"]
    assert [n for n, _ in problems] == ["f3.png", "f4.png"] and all("per set" in r for _, r in problems)


def test_decoded_pixels_per_set_are_bounded():
    class Echo:
        subjects = ["subj01"]
        device = "cpu"

        def predict(self, imgs, subjects):
            return type("R", (), {"predictions": {"subj01": np.zeros((len(imgs), 4), np.float32)}})()

    big = io.BytesIO()
    Image.new("RGB", (1000, 1000), (9, 9, 9)).save(big, "PNG")  # 1 megapixel each, decoded in full
    entries = [I.ImageEntry(f"p{i}.png", (lambda d=big.getvalue(): d)) for i in range(5)]
    res = I.predict_entries(Echo(), entries, max_pixels=2_500_000)
    assert res.names == ["p0.png", "p1.png", "p2.png"]
    assert [n for n, _ in res.bad] == ["p3.png", "p4.png"] and all("megapixels decoded" in r for _, r in res.bad)


def test_one_session_cannot_hold_more_than_its_upload_limit():
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec
    from starlette.exceptions import HTTPException

    from webapp import uploads

    active = uploads.install()
    assert active["session_limit"]
    original = uploads.MAX_SESSION_BYTES
    uploads.install(limit=100)  # the limit of this test
    try:
        mgr = MemoryUploadedFileManager("/upload")
        mgr.add_file("s1", UploadedFileRec("a", "a.png", "image/png", b"x" * 60))
        with pytest.raises(HTTPException) as ei:
            mgr.add_file("s1", UploadedFileRec("b", "b.png", "image/png", b"y" * 60))
        assert ei.value.status_code == 413 and "limit" in ei.value.detail
        mgr.add_file("s2", UploadedFileRec("c", "c.png", "image/png", b"z" * 60))  # another session: its own
        mgr.add_file("s1", UploadedFileRec("a", "a.png", "image/png", b"w" * 90))  # replacing a file is fine
        assert uploads.session_bytes(mgr, "s1") == 90
        mgr.remove_session_files("s1")  # the session ended: its files are gone
        assert uploads.session_bytes(mgr, "s1") == 0
    finally:
        uploads.install(limit=original)
    assert uploads.MAX_SESSION_BYTES == 2 * I.MAX_SET_BYTES + 25 * 2**20


def test_uploads_of_ended_sessions_are_freed():
    """Streamlit drops a closed tab's session from its reconnection cache without shutting it down,
    so its uploaded files stayed in memory for the life of the server; the reaper frees them."""
    import threading
    from types import SimpleNamespace

    from streamlit.runtime.memory_session_storage import MemorySessionStorage
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.session_manager import SessionInfo
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from webapp import uploads

    clock = [1000.0]
    storage = MemorySessionStorage(ttl_seconds=120)
    storage._cache._timer = lambda: clock[0]  # noqa: SLF001  (the test's clock)
    mgr = MemoryUploadedFileManager("/upload")
    active = {"open"}
    runtime = SimpleNamespace(uploaded_file_mgr=mgr, is_active_session=lambda sid: sid in active,
                              _session_mgr=SimpleNamespace(_session_storage=storage, _storage_lock=threading.Lock()))
    for sid in ("open", "closed-tab", "gone"):
        mgr.add_file(sid, UploadedFileRec(f"{sid}-1", "a.png", "image/png", b"x" * 1000))
    storage.save(SessionInfo(client=None, session=SimpleNamespace(id="closed-tab"), script_run_count=1))
    assert uploads.reap(runtime) == ["gone"]  # neither active nor waiting for a reconnection
    assert sorted(mgr.file_storage) == ["closed-tab", "open"]
    clock[0] += 121  # the reconnection time is over: Streamlit would only forget the session
    assert uploads.reap(runtime) == ["closed-tab"]
    assert list(mgr.file_storage) == ["open"] and storage.list() == []
    assert uploads.install()["reaper"]


# ============================================================ 4. damaged zips: every unused member has a reason
def _damaged_zip() -> bytes:
    """good.png; crc.png (CRC does not match); short.png (header understates its size);
    hidden, __MACOSX and '..' members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("good.png", _noise_png(1))
        z.writestr("crc.png", _noise_png(2))
        z.writestr("short.png", _noise_png(3))
        z.writestr(".DS_Store", b"x")
        z.writestr("__MACOSX/._good.png", b"junk")
        z.writestr("../../escape.png", _png())
        z.writestr("a/../../b.png", _png())
        z.writestr("dir/", b"")
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        infos = {i.filename: i for i in z.infolist()}
    # crc.png: flip one byte of its compressed data
    crc = infos["crc.png"]
    name_len, extra_len = struct.unpack("<HH", data[crc.header_offset + 26:crc.header_offset + 30])
    start = crc.header_offset + 30 + name_len + extra_len
    data[start + crc.compress_size // 2] ^= 0xFF
    # short.png: its central-directory entry says it is 100 bytes long
    short = infos["short.png"]
    pos = 0
    while True:
        pos = data.find(b"PK\x01\x02", pos)
        nlen = struct.unpack("<H", data[pos + 28:pos + 30])[0]
        if data[pos + 46:pos + 46 + nlen] == b"short.png":
            data[pos + 24:pos + 28] = struct.pack("<I", 100)
            break
        pos += 4
    assert short.file_size > 100
    return bytes(data)


def test_damaged_zip_members_are_listed_with_their_reason(tmp_path, app_store):
    zpath = tmp_path / "set.zip"
    zpath.write_bytes(_damaged_zip())
    entries, problems = I.list_image_files(zpath)
    decoded = {name: (img, reason) for name, img, reason in I.iter_decoded(entries)}  # before: BadZipFile raised
    reasons = {**{n: r for n, r in problems}, **{n: r for n, (img, r) in decoded.items() if img is None}}
    assert decoded["good.png"][0] is not None
    assert "damaged" in reasons["crc.png"] and "damaged" in reasons["short.png"]
    assert "hidden" in reasons[".DS_Store"] and "__MACOSX" in reasons["__MACOSX/._good.png"]
    assert "unsafe" in reasons["../../escape.png"] and "unsafe" in reasons["a/../../b.png"]
    assert "dir/" not in reasons  # a folder entry holds nothing
    # the page's path (uploads) and the CLI give the same reasons, with exit code 0
    up_entries, up_problems = I.image_entries_from_uploads([("set.zip", zpath.read_bytes())])
    assert {n for n, _ in up_problems} >= {"set.zip/.DS_Store", "set.zip/../../escape.png"}
    out = cli("predict", "--images", str(zpath), "--out", str(tmp_path / "out"), "--store", str(app_store),
              "--no-progress")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    import pandas as pd

    bad = pd.read_csv(tmp_path / "out" / "bad_files.csv").set_index("file")["reason"]
    assert set(bad.index) == set(reasons)


# ============================================================ 8. control characters in member names
def test_member_name_with_a_control_character_gives_a_readable_gifti(tmp_path, app_store):
    import nibabel as nib

    zpath = tmp_path / "ctl.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("bell\x07name.png", _noise_png(4))
        z.writestr("plain.png", _noise_png(5))
    out = tmp_path / "out"
    assert main(["predict", "--images", str(zpath), "--out", str(out), "--store", str(app_store),
                 "--no-progress"]) == 0
    names = [d.meta["Name"] for d in nib.load(out / "lh.predicted.func.gii").darrays]  # before: ExpatError
    assert names == ["bell\\x07name.png", "plain.png"]


# ============================================================ 5. Ctrl-C / SIGTERM during parallel training
@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    from brainviz.demo_brain import build_demo_brain

    root = tmp_path_factory.mktemp("tiny_demo")
    return build_demo_brain(root / "demo", n_subjects=2, include_vim1=False, max_images=40, progress=False)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_stopping_parallel_training_ends_cleanly(tiny_demo, tmp_path, sig, code):
    work = tmp_path / "work"
    p = subprocess.Popen([sys.executable, "-m", "precompute", "train", "--dataset", str(tiny_demo), "--work-dir",
                          str(work), "--cache-dir", str(tmp_path / "cache"), "--jobs", "2", "--quiet",
                          "--ue", '{"n_epochs": 2000}'],  # far longer than the test waits: stopped, never done
                         cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # as from a terminal: a shell's background job (e.g. `make test &`) inherits SIGINT ignored
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not list((work / "models").glob("*.partial.pt")):
        time.sleep(0.2)  # two UE fits are running side by side, one epoch done
    assert p.poll() is None, p.communicate()[1][-2000:]
    time.sleep(1.0)
    t0 = time.perf_counter()
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, (p.returncode, err[-2000:])  # before: -6 / 134, "terminate called ..."
    assert "terminate called" not in err and "Traceback" not in err
    assert ("interrupted" if sig == signal.SIGINT else "terminated") in err
    assert time.perf_counter() - t0 < 60


def test_jobs_stop_at_their_next_check_and_the_error_comes_after():
    from brainviz.jobs import Cancelled, check_cancelled, run_jobs, stragglers

    stopped = []

    def long_job():
        try:
            while True:
                time.sleep(0.01)
                check_cancelled()
        except Cancelled:
            stopped.append(True)
            raise

    def failing():
        time.sleep(0.2)
        raise BrainVizDataError("job", "broken on purpose")

    with pytest.raises(BrainVizDataError, match="broken on purpose"):
        run_jobs([("long", long_job), ("bad", failing)], 2)
    assert stopped == [True] and stragglers() == []  # the long job ended before run_jobs raised
    check_cancelled()  # outside a job: nothing happens


# ============================================================ 6. --ue and --n-perm: ranges before any work
@pytest.mark.parametrize("flags, fragment", [
    (["--ue", '{"lr": Infinity}'], "lr must be a finite number"),
    (["--ue", '{"embed_lr": NaN}'], "embed_lr must be a finite number"),
    (["--ue", '{"n_epochs": 100000000000000000000}'], "n_epochs = 1e+20 is larger than BrainViz accepts"),
    (["--ue", '{"batch_voxels": 50000000}'], "batch_voxels"),
    (["--n-perm", "-1"], "--n-perm"),
    (["--n-perm", "0"], "--n-perm"),
])
def test_non_finite_and_absurd_settings_fail_before_any_work(flags, fragment, tmp_path):
    work = tmp_path / "work"
    out = cli("all", *flags, "--work-dir", str(work), "--cache-dir", str(tmp_path / "cache"),
              "--dataset", str(tmp_path / "none"), "--store", str(tmp_path / "s.duckdb"), timeout=60)
    assert out.returncode == 2
    assert fragment in out.stderr and "Traceback" not in out.stderr
    assert not (work / "models").exists()


def test_universal_config_refuses_non_finite_values():
    from brainviz.encoders.universal import UniversalConfig

    with pytest.raises(BrainVizDataError, match="finite"):
        UniversalConfig(lr=float("inf")).validate()
    with pytest.raises(BrainVizDataError, match="finite"):
        UniversalConfig(loss_alpha=float("nan")).validate()


# ============================================================ 7. sizes are checked before files are read
def test_a_huge_non_image_file_is_refused_from_its_size(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(_noise_png(6))
    with open(folder / "huge.bin", "wb") as f:  # sparse: 300 MB on paper, nothing on disk
        f.truncate(300 * 2**20)
    entries, problems = I.list_image_files(folder)
    list(I.iter_decoded(entries[:1]))  # imports and decoder set-up outside the measurement
    tracemalloc.start()
    decoded = {n: (img, r) for n, img, r in I.iter_decoded(entries)}
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30 * 2**20, peak  # before: the whole file was read first (300 MB)
    assert decoded["a.png"][0] is not None and "300.0 MB" in decoded["huge.bin"][1]


def _bomb_mapping(path: Path) -> None:
    """An ROI-mapping .npy of a few hundred bytes whose pickle builds a 95-million-element array."""
    from numpy.lib import format as F

    class Huge:
        def __reduce__(self):
            from numpy._core.multiarray import _reconstruct

            return _reconstruct, (np.ndarray, (95_000_000,), b"O")

    head = io.BytesIO()
    F.write_array_header_1_0(head, {"descr": "|O", "fortran_order": False, "shape": ()})
    import pickle

    path.write_bytes(head.getvalue() + pickle.dumps(Huge(), protocol=4))


def test_a_tiny_mapping_that_describes_a_huge_array_is_refused(tmp_path):
    root = tmp_path / "ds"
    make_subject(root, n_lh=40, n_rh=50, n_surface=N_FSAVERAGE5, n_train=6, n_test=2)
    bad = root / "subj01" / "roi_masks" / "mapping_floc-faces.npy"
    _bomb_mapping(bad)
    assert bad.stat().st_size < 300
    out = cli("inspect", str(root), timeout=120)
    assert out.returncode == 2  # before: 0 ("OK"), after allocating the array
    line = one_line_error(out.stderr)
    assert str(bad) in line and "95,000,000 elements" in line


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_manifest_is_one_line(tmp_path):
    root = tmp_path / "ds"
    make_subject(root, n_lh=40, n_rh=50, n_surface=N_FSAVERAGE5, n_train=6, n_test=2)
    (root / "manifest.json").write_text('{"simulated": ' + _nested(200_000) + "}")
    out = cli("inspect", str(root), timeout=120)
    assert out.returncode == 2
    assert "nested too deeply" in one_line_error(out.stderr)  # before: a RecursionError traceback


def test_deeply_nested_store_manifest_is_a_clear_error(tmp_path):
    path = tmp_path / "n.duckdb"
    with StoreWriter(path) as w:
        w.add_dataset("demo", "Demo", "/x", simulated=True, surface="fsaverage5")
        w.add_subject("subj01", "demo", "nsd", n_train=2, n_test=1, n_lh=3, n_rh=2)
    con = duckdb.connect(str(path))
    con.execute("UPDATE datasets SET manifest = ?", ['{"a": ' + _nested(200_000) + "}"])
    con.close()
    with Store(path) as st:
        with pytest.raises(BrainVizDataError, match="nested too deeply"):
            st.datasets()


# ============================================================ 8. smaller: what inspect and the loaders say
def test_truncated_training_png_fails_inspect(tmp_path):
    root = tmp_path / "ds"
    make_subject(root, n_lh=40, n_rh=50, n_surface=N_FSAVERAGE5, n_train=6, n_test=2)
    img = sorted((root / "subj01" / "training_split" / "training_images").iterdir())[2]
    img.write_bytes(_noise_png(7)[:300])  # a cut-off download: the header still reads
    out = cli("inspect", str(root), timeout=120)
    assert out.returncode == 2  # before: 0 ("OK")
    line = one_line_error(out.stderr)
    assert str(img) in line and "truncated" in line


def test_constant_training_responses_are_refused_or_warned(tmp_path):
    root = tmp_path / "ds"
    sub = make_subject(root, n_lh=40, n_rh=50, n_surface=N_FSAVERAGE5, n_train=6, n_test=2)
    fmri = sub / "training_split" / "training_fmri"
    for h, n in (("lh", 40), ("rh", 50)):
        np.save(fmri / f"{h}_training_fmri.npy", np.full((6, n), 0.5, np.float32))
    out = cli("inspect", str(root), timeout=120)
    assert out.returncode == 2 and "same training response in every image" in one_line_error(out.stderr)
    y = np.random.default_rng(0).standard_normal((6, 50)).astype(np.float32)
    y[:, :7] = 1.0
    np.save(fmri / "rh_training_fmri.npy", y)
    out = cli("inspect", str(root), timeout=120)
    assert out.returncode == 0 and "WARNING: 47 vertices" in out.stdout  # 40 lh + 7 rh


def test_messages_never_advise_unsafe_loading(tmp_path):
    import torch

    from brainviz.encoders.universal import UniversalEncoder

    root = tmp_path / "ds"
    sub = make_subject(root, n_lh=40, n_rh=50, n_surface=N_FSAVERAGE5, n_train=6, n_test=2)
    resp = sub / "training_split" / "training_fmri" / "lh_training_fmri.npy"
    np.save(resp, np.array([{"x": 1}] * 6, dtype=object), allow_pickle=True)
    out = cli("inspect", str(root), timeout=120)
    line = one_line_error(out.stderr)
    assert out.returncode == 2 and str(resp) in line and "allow_pickle" not in line and "Python objects" in line
    ck = tmp_path / "model.pt"
    torch.save({"format": "x", "obj": Path("/x")}, ck)
    with pytest.raises(BrainVizDataError) as ei:
        UniversalEncoder.load(ck)
    msg = str(ei.value)
    assert "weights_only" not in msg and "safe_globals" not in msg and "Python objects" in msg


def test_the_old_live_model_is_freed_when_the_store_is_rebuilt(app_store, tmp_path):
    import gc
    import weakref

    from webapp import shell

    shell.load_predictor.clear()
    first = shell.load_predictor(str(app_store), (1, 1, 1), "ue_multi")
    ref = weakref.ref(first)
    del first
    second = shell.load_predictor(str(app_store), (2, 2, 2), "ue_multi")  # the stamp of a rebuilt file
    gc.collect()
    assert ref() is None  # before: both kept (+40 MB per rebuild)
    assert shell.load_predictor(str(app_store), (2, 2, 2), "ue_multi") is second
    shell.load_predictor.clear()


def test_no_duckdb_objects_are_left_at_interpreter_exit(tmp_path):
    """A page test whose store read fails (test_safety's damaged-block case) in a pytest process of its
    own: before, its exit printed ~100 lines of 'nanobind: leaked instance ... DuckDBPyConnection'."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                          str(tmp_path / "base"), "tests/webapp/test_safety.py", "-k", "read_error_inside_a_page"],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
    assert out.returncode == 0 and "1 passed" in out.stdout, (out.stdout + out.stderr)[-2000:]
    assert "nanobind" not in out.stdout + out.stderr, (out.stdout + out.stderr)[-1500:]


# ============================================================ 9. finished models are kept and reused
def _train(demo: Path, work: Path, cache: Path, *extra: str) -> int:
    return main(["train", "--dataset", str(demo), "--work-dir", str(work), "--cache-dir", str(cache), "--quick",
                 "--quiet", "--jobs", "1", *extra])


def _fitted(monkeypatch) -> list[str]:
    """Names of the models fitted from now on (ridge and UE fits are counted)."""
    from brainviz.encoders.ridge import RidgeEncoder
    from brainviz.pipeline import train as T

    fitted: list[str] = []
    real_fit, real_resumable = RidgeEncoder.fit, T.fit_resumable

    def ridge_fit(self, X, Y, *a, **k):
        fitted.append(f"ridge:{np.shape(Y)[1]}")
        return real_fit(self, X, Y, *a, **k)

    def resumable(cfg, data, final):
        fitted.append(Path(final).stem)
        return real_resumable(cfg, data, final)

    monkeypatch.setattr(RidgeEncoder, "fit", ridge_fit)
    monkeypatch.setattr(T, "fit_resumable", resumable)
    return fitted


def test_a_stopped_train_stage_keeps_its_finished_models(tiny_demo, tmp_path, monkeypatch):
    from brainviz.pipeline import train as T

    work, cache = tmp_path / "work", tmp_path / "cache"
    fitted = _fitted(monkeypatch)
    real = T.fit_resumable

    def stop_at_single_subj02(cfg, data, final):
        if Path(final).stem == "ue_single-subj02":
            raise KeyboardInterrupt  # Ctrl-C while this model trains
        return real(cfg, data, final)

    monkeypatch.setattr(T, "fit_resumable", stop_at_single_subj02)
    assert _train(tiny_demo, work, cache) == 130
    done = json.loads((work / "models" / "registry.json").read_text())
    assert {"ue_multi", "ue_pretrain-subj01", "ue_transfer-subj01", "ue_single-subj01"} <= set(done)
    stamps = {m: (work / "models" / Path(e["checkpoint"]).name).stat().st_mtime_ns for m, e in done.items()}
    # the next run trains only what was not finished (before: everything again)
    monkeypatch.setattr(T, "fit_resumable", real)
    fitted.clear()
    fitted += _fitted(monkeypatch)
    assert _train(tiny_demo, work, cache) == 0
    assert [f for f in fitted if not f.startswith("ridge")] == ["ue_single-subj02"]
    assert len([f for f in fitted if f.startswith("ridge")]) == 2
    reg = json.loads((work / "models" / "registry.json").read_text())
    for m, stamp in stamps.items():
        assert (work / "models" / Path(reg[m]["checkpoint"]).name).stat().st_mtime_ns == stamp  # untouched
    # unchanged inputs: nothing is trained
    fitted.clear()
    assert _train(tiny_demo, work, cache) == 0 and fitted == []
    # other settings: the UE models are trained again, ridge is kept
    assert _train(tiny_demo, work, cache, "--ue", '{"lr": 0.002}') == 0
    assert sorted(fitted) == ["ue_multi", "ue_pretrain-subj01", "ue_single-subj01", "ue_single-subj02"]
    # other data of one subject: its models (and the joint ones) are trained again
    fitted.clear()
    resp = tiny_demo / "subj02" / "training_split" / "training_fmri" / "lh_training_fmri.npy"
    backup = resp.read_bytes()
    try:
        y = np.load(resp)
        y[0] += 1.0
        np.save(resp, y)
        assert _train(tiny_demo, work, cache, "--ue", '{"lr": 0.002}') == 0
    finally:
        resp.write_bytes(backup)
    assert sorted(f for f in fitted if not f.startswith("ridge")) == ["ue_multi", "ue_pretrain-subj01",
                                                                      "ue_single-subj02"]
    assert len([f for f in fitted if f.startswith("ridge")]) == 1
    # --no-reuse trains everything
    fitted.clear()
    assert _train(tiny_demo, work, cache, "--no-reuse") == 0
    assert len(fitted) == 6


def test_finished_stages_are_kept_until_an_input_or_output_changes(tmp_path):
    from types import SimpleNamespace

    from brainviz.pipeline.context import PipelineConfig
    from brainviz.pipeline.workdir import finished_stage, mark_stage, stage_fingerprint

    ds = tmp_path / "ds"
    make_subject(ds, n_lh=4, n_rh=5, n_surface=N_FSAVERAGE5, n_train=3, n_test=1)
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    ctx = SimpleNamespace(work=work, config=PipelineConfig(dataset=ds, jobs=1),
                          dataset=SimpleNamespace(path=ds), workers=lambda device=None: 1)
    reg = {"ridge-subj01": {"fingerprint": "abc", "checkpoint": str(work / "none.joblib")}}
    fp = stage_fingerprint(ctx, "evaluate", reg)
    assert not finished_stage(ctx, "evaluate", fp)
    (work / "results" / "encoders.csv").write_text("a\n1\n")
    mark_stage(ctx, "evaluate", fp, ["results/encoders.csv"])
    assert finished_stage(ctx, "evaluate", fp)
    assert stage_fingerprint(ctx, "evaluate", reg) == fp
    assert stage_fingerprint(ctx, "evaluate", {"ridge-subj01": {**reg["ridge-subj01"], "fingerprint": "x"}}) != fp
    ctx.config.seed = 1
    assert stage_fingerprint(ctx, "evaluate", reg) != fp
    ctx.config.seed = 0
    time.sleep(0.01)
    (work / "results" / "encoders.csv").write_text("a\n2\n")  # written by someone else since
    assert not finished_stage(ctx, "evaluate", fp)
    mark_stage(ctx, "evaluate", fp, ["results/encoders.csv"])
    img = sorted((ds / "subj01" / "training_split" / "training_images").iterdir())[0]
    os.utime(img, ns=(time.time_ns(), time.time_ns() + 10**9))  # the dataset changed
    assert stage_fingerprint(ctx, "evaluate", reg) != fp
