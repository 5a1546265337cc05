"""Diffusers pipelines with seeded random weights, for boxes with no image model to download.

- ``synthetic:tiny``: a tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, tokenizer) from small
  configs, built once with seeded weights, saved to ~/.cache/shadowbench/diffusers/ and loaded through the same
  ``from_pretrained`` path a real model takes. Its images are noise.
- ``synthetic:sd15``: Stable Diffusion 1.5's published UNet, VAE and text encoder shapes with seeded random weights
  (860M + 84M + 123M parameters), so a box can measure that model's compute and energy per image without
  downloading weights. Only the configs are saved; the weights are generated at load time.

Rows of both say ``weights=synthetic``. The tokenizer is a character-level CLIP BPE vocabulary written here (the
real one is a download); prompts still map to valid token ids.
"""
from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

from .cache import cache_dir

SEED = 1234

_SCHEDULER = {"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
              "beta_end": 0.012, "beta_schedule": "scaled_linear", "prediction_type": "epsilon",
              "timestep_spacing": "leading", "steps_offset": 1}

CONFIGS = {
    "tiny": {
        "unet": {"_class_name": "UNet2DConditionModel", "sample_size": 32, "in_channels": 4, "out_channels": 4,
                 "layers_per_block": 2, "block_out_channels": [32, 64],
                 "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                 "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": 32,
                 "attention_head_dim": 8, "norm_num_groups": 32},
        "vae": {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
                "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
                "up_block_types": ["UpDecoderBlock2D"] * 2, "layers_per_block": 1, "sample_size": 64,
                "norm_num_groups": 32},
        "text_encoder": {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": 1000,
                         "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 5,
                         "num_attention_heads": 4, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                         "projection_dim": 32, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
    },
    "sd15": {  # the shapes of stable-diffusion-v1-5's unet/vae/text_encoder config.json
        "unet": {"_class_name": "UNet2DConditionModel", "sample_size": 64, "in_channels": 4, "out_channels": 4,
                 "layers_per_block": 2, "block_out_channels": [320, 640, 1280, 1280],
                 "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                      "DownBlock2D"],
                 "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                 "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32},
        "vae": {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
                "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
                "up_block_types": ["UpDecoderBlock2D"] * 4, "layers_per_block": 2, "sample_size": 512,
                "norm_num_groups": 32},
        "text_encoder": {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": 49408,
                         "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                         "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                         "projection_dim": 768, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
    },
}
SAVE_WEIGHTS = {"tiny": True, "sd15": False}


def _tokenizer_files(folder: Path) -> None:
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
         "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))


def _key(name: str) -> str:
    return hashlib.sha256(json.dumps([CONFIGS[name], _SCHEDULER, SEED], sort_keys=True).encode()).hexdigest()[:12]


def ensure(name: str) -> Path:
    """The pipeline folder for ``synthetic:NAME``, built on first use."""
    folder = cache_dir("diffusers") / f"{name}-{_key(name)}"
    if (folder / "model_index.json").exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    cfg = CONFIGS[name]
    for part in ("unet", "vae", "text_encoder"):
        (tmp / part).mkdir(parents=True)
        (tmp / part / "config.json").write_text(json.dumps(cfg[part]))
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(_SCHEDULER))
    _tokenizer_files(tmp / "tokenizer")
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"], "safety_checker": [None, None],
             "feature_extractor": [None, None], "requires_safety_checker": False}
    if SAVE_WEIGHTS[name]:
        pipe = build_from_configs(tmp)
        pipe.save_pretrained(tmp, safe_serialization=True)  # writes model_index.json and the weights
    else:
        (tmp / "model_index.json").write_text(json.dumps(index))
    (tmp / "SYNTHETIC").write_text(f"seeded random weights (seed {SEED}), {name} configs; images are noise\n")
    tmp.rename(folder)
    return folder


def build_from_configs(folder: Path, dtype=None):
    """A StableDiffusionPipeline whose weights are drawn with a fixed seed from the configs in ``folder``."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text()))
    vae = AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text()))
    te_cfg = json.loads((folder / "text_encoder" / "config.json").read_text())
    text_encoder = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in te_cfg.items() if k != "architectures"}))
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    scheduler = EulerDiscreteScheduler.from_config(scheduler_config)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    if dtype is not None and dtype != torch.float32:  # weights are drawn in float32
        pipe = pipe.to(dtype=dtype)
    return pipe
