"""Image generation backend: diffusers text-to-image pipelines. fp16 on CUDA, fp32 on CPU (or the workload's
dtype); the transformer from a GGUF file where the workload names one (diffusers' ``from_single_file`` with its
GGUF quantization config: the weights stay quantized and are dequantized per layer at compute time); model or
sequential CPU offload on CUDA where asked. The device is synchronized before the window closes. Denoising
iterations per second are timed from the pipeline's own step callbacks (it/s as the Stable Diffusion tools report
it); seconds per image cover the whole call (text encoding, denoising, VAE decode)."""
from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from .. import synthetic
from ..config import Workload
from ..errors import BackendError, ModelNotFound, OutOfMemory, is_out_of_memory

PROMPT = "a product photo of a small home server on a wooden desk, soft morning light, detailed"


class DiffusersBackend:
    name = "diffusers"

    def __init__(self, workload: Workload, model_path: Path):
        self.workload, self.path = workload, Path(model_path)
        self.weights = "pretrained"
        self.quant, self.offload = "", "none"

    def load(self) -> None:
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        for lib in (diffusers_logging, transformers_logging):  # the run has its own progress display
            lib.disable_progress_bar()
            lib.set_verbosity_error()

        p = self.workload.params
        torch.set_num_threads(self.workload.threads)
        self.torch = torch
        cuda = torch.cuda.is_available()
        self.device = p["device"] if p["device"] != "auto" else ("cuda" if cuda else "cpu")
        if self.device == "cuda" and not cuda:
            raise BackendError("device = \"cuda\" but torch sees no CUDA GPU")
        self.dtype = ({"auto": torch.float16 if self.device == "cuda" else torch.float32} | {
            k: getattr(torch, k) for k in ("bfloat16", "float16", "float32")})[p["dtype"]]
        index = self.path / "model_index.json"
        if not self.path.is_dir() or not index.exists():
            raise ModelNotFound(f"{self.path}: not a diffusers pipeline folder (no model_index.json)")
        self.weights = "synthetic" if (self.path / "SYNTHETIC").exists() else "pretrained"
        has_weights = any(self.path.glob("*/*.safetensors")) or any(self.path.glob("unet/*.bin"))
        try:
            if self.weights == "synthetic" and not has_weights:
                self.pipe = synthetic.build_from_configs(self.path, dtype=self.dtype)
            else:
                from diffusers import DiffusionPipeline
                from diffusers.utils import deprecation_utils

                # newer diffusers take `dtype` and deprecate `torch_dtype`
                dtype_kw = "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
                parts = {"transformer": self._gguf_transformer(index, dtype_kw)} if p["transformer_gguf"] else {}
                self.pipe = DiffusionPipeline.from_pretrained(str(self.path), variant=p["variant"] or None,
                                                              **{dtype_kw: self.dtype}, **parts)
        except (OSError, ValueError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise BackendError(f"{self.path}: diffusers could not load the pipeline ({e})") from e
        try:
            if self.device == "cuda" and p["offload"] == "model":
                self.pipe.enable_model_cpu_offload()
                self.offload = "model"
            elif self.device == "cuda" and p["offload"] == "sequential":
                self.pipe.enable_sequential_cpu_offload()
                self.offload = "sequential"
            else:
                self.pipe = self.pipe.to(self.device)
        except Exception as e:
            if is_out_of_memory(e):
                raise OutOfMemory(f"{self.path} on {self.device}", e) from e
            raise
        self.pipe.set_progress_bar_config(disable=True)
        if hasattr(self.pipe, "safety_checker"):
            self.pipe.safety_checker = None
        self.vae_scale = getattr(self.pipe, "vae_scale_factor", 8)
        unet = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", 64) or 64
        self.width = p["width"] or sample * self.vae_scale
        self.height = p["height"] or sample * self.vae_scale
        if self.width % 8 or self.height % 8:
            raise BackendError(f"width and height must be multiples of 8, got {self.width}x{self.height}")
        self.params = sum(x.numel() for x in unet.parameters()) if unet is not None else 0

    def _gguf_transformer(self, index: Path, dtype_kw: str):
        """The transformer from the workload's GGUF file, quantized weights kept (GGUFParameter), its config from
        the pipeline folder (nothing fetched); ``self.quant`` = the file's most common quantized type."""
        import diffusers
        from diffusers import GGUFQuantizationConfig
        from gguf import GGUFReader

        from .. import models

        g = self.workload.params["transformer_gguf"]
        if isinstance(g, str) and g.startswith("synthetic:"):
            path = synthetic.transformer_gguf(self.path, g.split(":", 1)[1])
        else:
            path = models.resolve(models.parse_ref(g, self.path, "transformer_gguf"))
        cls = getattr(diffusers, json.loads(index.read_text())["transformer"][1])
        types = [t.tensor_type.name for t in GGUFReader(str(path)).tensors if t.tensor_type.name not in ("F32", "F16")]
        self.quant = max(set(types), key=types.count) if types else "F16"
        return cls.from_single_file(str(path), config=str(self.path), subfolder="transformer", local_files_only=True,
                                    quantization_config=GGUFQuantizationConfig(compute_dtype=self.dtype),
                                    **{dtype_kw: self.dtype})

    def unload(self) -> None:
        self.pipe = None
        if getattr(self, "device", "") == "cuda":
            self.torch.cuda.empty_cache()

    def settings(self) -> dict:
        return {"threads": self.workload.threads, "device": self.device, "compute_type": str(self.dtype).split(".")[-1],
                "transformer_quant": self.quant, "offload": self.offload,
                "backend_build": f"torch {self.torch.__version__}; {type(self.pipe).__name__}; "
                                 f"denoiser {self.params / 1e6:.3g}M params"}

    def prepare(self, test: str) -> None:
        if self.device == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    def run(self, test: str) -> dict:
        p = self.workload.params
        steps, images = p["steps"], p["images"]
        step_times: list[float] = []

        def on_step(pipe, i, t, kwargs):
            step_times.append(time.perf_counter())
            return kwargs

        gen = self.torch.Generator(device="cpu").manual_seed(p["seed"])
        t0 = time.perf_counter()
        try:
            with self.torch.inference_mode():
                self.pipe(PROMPT, num_inference_steps=steps, guidance_scale=p["guidance_scale"], width=self.width,
                          height=self.height, num_images_per_prompt=images, generator=gen, output_type="np",
                          callback_on_step_end=on_step)
        except Exception as e:
            if is_out_of_memory(e):
                raise OutOfMemory(f"{images} image(s) of {self.width}x{self.height} on {self.device}", e) from e
            raise
        if self.device == "cuda":
            self.torch.cuda.synchronize()  # the window closes only after the device finished
        wall = time.perf_counter() - t0
        out = {"images": images, "steps": steps, "width": self.width, "height": self.height,
               "s_per_image": wall / images, "weights": self.weights}
        if len(step_times) >= 2:  # first callback marks the end of step 1; rate over the remaining steps
            out["it_per_s"] = (len(step_times) - 1) / (step_times[-1] - step_times[0])
        if self.device == "cuda":
            out["peak_mem_gb"] = self.torch.cuda.max_memory_allocated() / 1e9
            out["peak_mem_kind"] = "cuda_max_allocated"
        else:
            out["peak_mem_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
            out["peak_mem_kind"] = "process_peak_rss"
        return out


def create(workload: Workload, model_path: Path) -> DiffusersBackend:
    return DiffusersBackend(workload, model_path)
