"""Image suite: a real diffusers pipeline (tiny, seeded random weights) through the harness."""

import csv
import os
from pathlib import Path

import pytest

from bench import synthetic
from bench.results import read_rows

from .conftest import run_cli

pytestmark = pytest.mark.slow  # end-to-end: real inference

IMAGE_SUITE = """
[suite]
name = "img"
[defaults]
warmups = 1
repetitions = 2
threads = 2
[energy]
idle_s = 0

[[workloads]]
name = "first"
kind = "image"
model = {model}
steps = 3

[[workloads]]
name = "tiny"
kind = "image"
model = "synthetic:tiny"
steps = 4
"""


def _rows(folder):
    return read_rows(next(p for p in folder.rglob("*.csv") if not p.name.endswith(".power.csv")))


def test_tiny_synthetic_pipeline_through_the_harness(write_suite, tmp_path):
    r = run_cli("run", write_suite(IMAGE_SUITE.format(model='"synthetic:tiny"').replace('name = "first"',
                                                                                       'name = "tiny-3"')),
                "--results-dir", tmp_path / "res", "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = _rows(tmp_path / "res")
    assert [x["workload"] for x in rows] == ["tiny-3", "tiny-3", "tiny", "tiny"]
    for x in rows:
        assert x["backend"] == "diffusers" and x["weights"] == "synthetic" and x["model"] == "synthetic:tiny"
        assert (x["images"], x["width"], x["height"]) == ("1", "64", "64")
        assert float(x["s_per_image"]) > 0 and float(x["it_per_s"]) > 0
        assert float(x["peak_mem_gb"]) > 0 and x["peak_mem_kind"] == "process_peak_rss"
        assert x["device"] == "cpu" and x["compute_type"] == "float32"
        assert float(x["energy_j"]) > 0
    assert [x["steps"] for x in rows] == ["3", "3", "4", "4"]


def test_tiny_pipeline_is_saved_once_and_loaded_by_from_pretrained():
    folder = synthetic.ensure("tiny")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.exists() and (folder / "SYNTHETIC").exists() and (folder / "model_index.json").exists()
    stamp = weights.stat().st_mtime_ns
    assert synthetic.ensure("tiny") == folder and weights.stat().st_mtime_ns == stamp
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder))
    assert type(pipe).__name__ == "StableDiffusionPipeline"


def test_sd15_synthetic_has_stable_diffusion_1_5_shapes():
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = synthetic.CONFIGS["sd15"]
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg["unet"])
        vae = AutoencoderKL.from_config(cfg["vae"])
        te = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in cfg["text_encoder"].items() if k != "architectures"}))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(unet) == pytest.approx(859.5e6, rel=0.002)  # SD 1.5 UNet: 859.52M parameters
    assert count(vae) == pytest.approx(83.65e6, rel=0.002)
    assert count(te) == pytest.approx(123.06e6, rel=0.002)
    folder = synthetic.ensure("sd15")
    assert not any(folder.glob("unet/*.safetensors"))  # configs only: weights are drawn at load time


@pytest.mark.parametrize("model, expected", [
    ('{{ hf_repo = "no-such-org/no-such-pipeline" }}', "no-such-org/no-such-pipeline"),
    ('"{folder}"', "not a diffusers pipeline folder"),
])
def test_unknown_model_or_non_pipeline_folder_named_other_workloads_run(write_suite, tmp_path, model, expected):
    folder = tmp_path / "not-a-pipeline"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    suite = write_suite(IMAGE_SUITE.format(model=model.format(folder=folder)))
    r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress",
                env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2  # a model that is not there is bad input
    assert expected in r.stderr
    assert [x["workload"] for x in _rows(tmp_path / "res")] == ["tiny", "tiny"]


FLUX_SUITE = """
[suite]
name = "tiny-flux"
[defaults]
warmups = 0
repetitions = 2
threads = 2
[energy]
idle_s = 0
meter = "estimate"
[[workloads]]
name = "tiny-flux-q8_0"
kind = "image"
model = "synthetic:tiny-flux"
transformer_gguf = "synthetic:Q8_0"
steps = 1
width = 64
height = 64
guidance_scale = 0.0
"""


@pytest.mark.slow
def test_a_flux_shaped_transformer_runs_from_a_quantized_gguf_file(write_suite, tmp_path):
    """The tiny Flux pipeline's transformer written to GGUF (Q8_0 by the gguf package), loaded through diffusers'
    GGUF support (the path a real Flux GGUF takes), one step at 64x64 on the CPU; the rows say what ran."""
    import gguf

    r = run_cli("run", write_suite(FLUX_SUITE), "--results-dir", tmp_path, "--no-progress", "--machine", "fluxbox")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(next(p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv")))))
    assert len(rows) == 2
    for row in rows:
        assert row["weights"] == "synthetic" and row["transformer_quant"] == "Q8_0" and row["offload"] == "none"
        assert row["width"] == row["height"] == "64" and row["steps"] == "1" and float(row["s_per_image"]) > 0
        assert "FluxPipeline" in row["backend_build"]
    # the file holds Q8_0 blocks for the 2-D weights, F32 for the rest
    cache = sorted(Path(os.environ["XDG_CACHE_HOME"]).rglob("transformer-Q8_0.gguf"))
    assert cache, "the GGUF file is written beside the synthetic pipeline"
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(cache[0])).tensors}
    assert types == {"Q8_0", "F32"} and synthetic.GGUF_TYPES[0] == "Q8_0"


@pytest.mark.parametrize("extra,expected", [
    ('model = "synthetic:tiny"\ntransformer_gguf = "synthetic:Q8_0"', 'with model = "synthetic:tiny-flux"'),
    ('model = "synthetic:tiny-flux"\ntransformer_gguf = "synthetic:Q3_K"', "synthetic:Q8_0/Q5_0/Q4_0"),
    ('model = "synthetic:tiny-flux"\ntransformer_gguf = "no-such.gguf"', "an existing GGUF file"),
    ('model = "synthetic:tiny-flux"\noffload = "gpu"', '"none", "model"'),
])
def test_gguf_and_offload_keys_are_checked(write_suite, extra, expected):
    text = ('[suite]\nname = "s"\n[[workloads]]\nname = "w"\nkind = "image"\n' + extra + "\n")
    r = run_cli("validate", write_suite(text))
    assert r.returncode == 2 and expected in r.stderr, r.stderr
