"""Kind ``image``: text-to-image with diffusers pipelines (fp16 on CUDA, fp32 on CPU)."""
from __future__ import annotations

from ..columns import Column as C
from . import Pricing
from .schema import DEVICE, FIT_KEYS, Key, fixed_tests, int_key, number_key, str_key

NAME = "image"
BACKEND = "bench.backends.image"
parse_test, TESTS = fixed_tests("txt2img")

KEYS = {
    "model": Key((str, dict), 'an image model: "synthetic:tiny", "synthetic:sd15", a diffusers pipeline folder, '
                 'or {hf_repo, revision}', required=True),
    "tests": TESTS,
    "steps": int_key("an integer >= 1 (denoising steps)", 4, check=lambda v: v >= 1),
    "images": int_key("an integer >= 1 (images per call)", 1, check=lambda v: v >= 1),
    "width": int_key("a multiple of 8 (0 = the model's default)", 0, check=lambda v: v >= 0 and v % 8 == 0),
    "height": int_key("a multiple of 8 (0 = the model's default)", 0, check=lambda v: v >= 0 and v % 8 == 0),
    "guidance_scale": number_key("a number >= 0", 7.5, check=lambda v: v >= 0),
    "device": DEVICE,
    "seed": int_key(default=0),
    "variant": str_key('a weights variant such as "fp16" ("" = the default files)', ""),
    **FIT_KEYS,
}

COLUMNS = [
    C("images", "metric", int, "images", "images per repetition"),
    C("steps", "metric", int, "", "denoising steps"),
    C("width", "metric", int, "px", "image width"),
    C("height", "metric", int, "px", "image height"),
    C("s_per_image", "metric", float, "s", "wall time per image (text encoding, denoising, VAE decode)",
      summary=True, spread=True, label="s/image", headline=True, better="lower"),
    C("it_per_s", "metric", float, "it/s", "denoising iterations per second (from the step callbacks)",
      summary=True),
    C("peak_mem_gb", "metric", float, "GB", "peak memory (see peak_mem_kind)"),
    C("peak_mem_kind", "metric", str, "", "cuda_max_allocated or process_peak_rss"),
    C("weights", "metric", str, "", "pretrained or synthetic (random weights of the real shapes)"),
]
SHARES = ("compute_type",)

PRICING = Pricing("image", "image", lambda row: row["images"])
