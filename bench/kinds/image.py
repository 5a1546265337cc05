"""Kind ``image``: text-to-image with diffusers pipelines (fp16 on CUDA, fp32 on CPU, or the dtype asked for), in
the forms a card holds: the pipeline's transformer from a GGUF file (diffusers' GGUF support: Flux, Qwen-Image
quantized to Q8_0, Q4_K...), and diffusers' CPU offload (one component on the GPU at a time, or layer by layer)."""
from __future__ import annotations

from pathlib import Path

from ..columns import Column as C
from ..errors import ConfigError
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
    "transformer_gguf": Key((str, dict), "the pipeline's transformer as a GGUF file, loaded by diffusers' GGUF "
                            'support: a path, {hf_repo, hf_file}, or "synthetic:Q8_0" (Q5_0, Q4_0) with model = '
                            '"synthetic:tiny-flux"', None),
    "dtype": str_key('"auto" (float16 on CUDA, float32 on the CPU), "bfloat16" (Flux, Qwen-Image), "float16" or '
                     '"float32"', "auto", check=lambda v: v in ("auto", "bfloat16", "float16", "float32")),
    "offload": str_key('"none", "model" (diffusers\' model CPU offload: one component on the GPU at a time) or '
                       '"sequential" (layer by layer: the least GPU memory, the slowest); CUDA only',
                       "none", check=lambda v: v in ("none", "model", "sequential")),
    **FIT_KEYS,
}


def finish(w: dict, path, where: str, check_models: bool) -> None:
    from ..synthetic import NAMES

    m = w["model"]
    if isinstance(m, str) and m.startswith("synthetic:") and m.split(":", 1)[1] not in NAMES:
        raise ConfigError(path, f"{where}.model", "an image pipeline: synthetic:" + ", synthetic:".join(NAMES)
                          + " (synthetic LLM weights are for kind = \"llm\")", m)
    g = w["transformer_gguf"]
    if isinstance(g, str) and g.startswith("synthetic:"):
        from ..synthetic import GGUF_TYPES

        if g.split(":", 1)[1] not in GGUF_TYPES or w["model"] != "synthetic:tiny-flux":
            raise ConfigError(path, f"{where}.transformer_gguf", "synthetic:" + "/".join(GGUF_TYPES)
                              + ' with model = "synthetic:tiny-flux"', g)
    elif g is not None:
        from .. import models

        ref = models.parse_ref(g, Path(path), f"{where}.transformer_gguf")
        if ref.source == "path":
            if check_models and not Path(ref.name).is_file():
                raise ConfigError(path, f"{where}.transformer_gguf", "an existing GGUF file", ref.name)
            w["transformer_gguf"] = ref.name
        elif ref.source != "hf" or not ref.file:
            raise ConfigError(path, f"{where}.transformer_gguf", "a GGUF file: a path or {hf_repo, hf_file}", g)

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
    C("transformer_quant", "settings", str, "", "the GGUF type of the transformer's quantized weights (Q8_0, "
      "Q4_K...); empty where the pipeline's own weights run"),
    C("offload", "settings", str, "", "none, model or sequential (diffusers' CPU offload)"),
]
SHARES = ("compute_type",)

PRICING = Pricing("image", "image", lambda row: row["images"])
