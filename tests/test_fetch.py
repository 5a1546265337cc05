"""GPU suites and model fetching: suites validate here; hub models resolve through a pre-filled Hugging Face cache
with HF_HUB_OFFLINE=1 (the same code path as a download); the fit check and the disk check."""
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from bench import fetch, models
from bench.commands import pick_suite
from bench.config import load_suite
from bench.errors import DeviceUnavailable
from bench.energy import NullMeter
from bench.energy.nvml import probe_gpus
from bench.results import read_rows
from bench.runner import Runner

from .conftest import REPO, run_cli
from .fake_nvml import FakeNVML, PowerTrace

SMOL = models.resolve(models.ModelRef("bundled", "smollm2"))


def fill_cache(hf_home: Path, repo: str, filename: str, src: Path | None = None, sparse_bytes: int = 0) -> Path:
    """The layout huggingface_hub writes: blobs/, snapshots/<commit>/<file> -> blob, refs/main."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(f"{repo}/{filename}".encode()).hexdigest()
    blob = root / "blobs" / hashlib.sha256(f"{repo}/{filename}".encode()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    if src is not None:
        shutil.copyfile(src, blob)
    else:
        with open(blob, "wb") as f:
            f.truncate(sparse_bytes)  # sparse: the size without the disk
    snap = root / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snap


@pytest.mark.parametrize("suite", ["rtx3090.toml", "rtx4060ti.toml", "gpu-llama3.1-8b.toml", "ollama.toml",
                                   "vllm.toml", "sd15-synthetic.toml", "server-smollm2.toml", "quick.toml"])
def test_every_suite_validates(suite):
    r = run_cli("validate", REPO / "suites" / suite)
    assert r.returncode == 0, r.stderr


HF_SUITE = """
[suite]
name = "hub"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0
[[workloads]]
name = "from-hub"
kind = "llm"
model = {{ hf_repo = "test-org/smollm2-gguf", hf_file = "smollm2.gguf" }}
arch = {{ n_layers = 30, n_kv_heads = 3, head_dim = 64 }}
n_ctx = {n_ctx}
tests = ["pp32+tg8"]
"""


@pytest.mark.slow
def test_hub_model_resolves_from_prefilled_cache_offline(write_suite, tmp_path):
    hf_home = tmp_path / "hf"
    snap = fill_cache(hf_home, "test-org/smollm2-gguf", "smollm2.gguf", src=SMOL)
    r = run_cli("run", write_suite(HF_SUITE.format(n_ctx=512)), "--results-dir", tmp_path / "res", "--no-progress",
                env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    [row] = read_rows(next(p for p in (tmp_path / "res").rglob("*.csv") if not p.name.endswith(".power.csv")))
    assert row["model"] == "hf:test-org/smollm2-gguf/smollm2.gguf"
    assert row["model_sha256"] == hashlib.sha256(snap.read_bytes()).hexdigest()
    assert float(row["tg_tokens_per_s"]) > 0 and row["output_tokens"] == "8"
    # a model that is not in the cache fails clearly offline, naming it
    r = run_cli("run", write_suite(HF_SUITE.format(n_ctx=512).replace("smollm2-gguf", "absent-gguf"), "b.toml"),
                "--results-dir", tmp_path / "res2", "--no-progress",
                env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "test-org/absent-gguf" in r.stderr and "HF_HUB_OFFLINE" in r.stderr


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hf_home


def _card(gb):
    gpus, why = probe_gpus(FakeNVML(PowerTrace(horizon_s=1), name="NVIDIA GeForce RTX 4060 Ti", memory_gb=gb))
    assert why == ""
    return gpus


@pytest.mark.slow
def test_model_larger_than_the_card_is_skipped_with_sizes_and_the_rest_runs(write_suite, tmp_path, offline_cache):
    fill_cache(offline_cache, "test-org/big-gguf", "big-f16.gguf", sparse_bytes=17_000_000_000)
    fill_cache(offline_cache, "test-org/smollm2-gguf", "smollm2.gguf", src=SMOL)
    text = HF_SUITE.format(n_ctx=512) + """
[[workloads]]
name = "too-big"
kind = "llm"
model = { hf_repo = "test-org/big-gguf", hf_file = "big-f16.gguf" }
arch = { n_layers = 32, n_kv_heads = 8, head_dim = 128 }
n_ctx = 4096
tests = ["tg8"]
"""
    suite = load_suite(write_suite(text))
    out = Runner(suite, NullMeter(), tmp_path / "res", "box", _card(16.0), show_progress=False, idle_s=0).run()
    assert out.failures == []
    [(name, why)] = out.skipped
    assert name == "too-big"
    assert "needs 18.14 GB" in why and "model 17.00 GB" in why and "KV cache 0.54 GB for n_ctx 4096" in why
    assert "RTX 4060 Ti" in why and "16.0 GB" in why
    assert [r["workload"] for r in read_rows(out.path)] == ["from-hub"]  # the rest of the suite ran


def test_kv_cache_counts_in_the_fit(offline_cache):
    fill_cache(offline_cache, "test-org/smollm2-gguf", "smollm2.gguf", src=SMOL)
    ref = models.ModelRef("hf", "test-org/smollm2-gguf", "smollm2.gguf")
    small = fetch.need("llm", ref, {"n_ctx": 4096, "arch": {"n_layers": 32, "n_kv_heads": 8, "head_dim": 128}})
    assert small.download_bytes == 0 and small.model_bytes == SMOL.stat().st_size
    assert fetch.fit_reason("llm", small, {"n_gpu_layers": -1}, _card(16.0), 24) is None
    huge = fetch.need("llm", ref, {"n_ctx": 131072, "arch": {"n_layers": 80, "n_kv_heads": 64, "head_dim": 128}})
    why = fetch.fit_reason("llm", huge, {"n_gpu_layers": -1}, _card(16.0), 24)
    assert why and "KV cache 343.60 GB for n_ctx 131072" in why
    # with every layer on the CPU, RAM is what has to hold it
    assert "RAM" in fetch.fit_reason("llm", huge, {"n_gpu_layers": 0}, _card(16.0), 24)


def test_kv_cache_size():
    # Llama-3.1-8B: 32 layers, 8 KV heads of 128, f16, 4096 tokens = 512 MiB
    assert fetch.kv_cache_bytes(4096, {"n_layers": 32, "n_kv_heads": 8, "head_dim": 128}) == 512 * 2**20


@pytest.mark.slow
def test_full_disk_is_refused_before_downloading(write_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "hub_size", lambda ref: (5_000_000_000, False))  # not cached: would download 5 GB
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100e9, 99e9, 2_000_000_000))
    downloads = []
    monkeypatch.setattr(models, "resolve", lambda ref: downloads.append(ref))
    suite = load_suite(write_suite(HF_SUITE.format(n_ctx=512)), check_models=False)
    out = Runner(suite, NullMeter(), tmp_path / "res", "box", _card(24.0), show_progress=False, idle_s=0).run()
    [(name, msg)] = out.failures
    assert "not enough disk for the download: needs 5.00 GB" in msg and "2.00 GB free" in msg
    assert out.exit_status == 2
    assert downloads == []  # refused before anything downloaded
    with pytest.raises(DeviceUnavailable):
        fetch.check_disk(fetch.Need(5_000_000_000, 5_000_000_000, 0, ""), tmp_path)


def test_make_bench_picks_the_suite_by_gpu_memory():
    assert pick_suite([]).name == "quick.toml"
    assert pick_suite(_card(25.77)).name == "rtx3090.toml"  # a 24 GiB card as NVML reports it
    assert pick_suite(_card(17.18)).name == "rtx4060ti.toml"  # 16 GiB
    assert pick_suite(_card(8.0)).name == "quick.toml"
