"""Diffusers pipelines with seeded random weights, for boxes with no image model to download.

- ``synthetic:tiny``: a tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, tokenizer) from small
  configs, built once with seeded weights, saved to ~/.cache/shadowbench/diffusers/ and loaded through the same
  ``from_pretrained`` path a real model takes. Its images are noise.
- ``synthetic:sd15``: Stable Diffusion 1.5's published UNet, VAE and text encoder shapes with seeded random weights
  (860M + 84M + 123M parameters), so a box can measure that model's compute and energy per image without
  downloading weights. Only the configs are saved; the weights are generated at load time.
- ``synthetic:tiny-flux``: a tiny FLUX.1-shaped pipeline (FluxTransformer2DModel with one double and one single
  block, CLIP and T5 text encoders, a one-block VAE, the flow-matching scheduler), saved like ``tiny``; its
  transformer can be written to a GGUF file quantized to Q8_0/Q5_0/Q4_0 by the ``gguf`` package
  (``transformer_gguf``), which diffusers then loads through the same GGUF path a real Flux GGUF takes.

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
NAMES = ("tiny", "sd15", "tiny-flux")
TEST_SHAPES = ("tiny", "tiny-flux")  # made-up shapes for the tests: never priced
PUBLISHED = {"sd15": "Stable Diffusion 1.5"}
GGUF_TYPES = ("Q8_0", "Q5_0", "Q4_0")  # what the gguf package quantizes in Python
FLUX = {  # the shapes diffusers' own Flux pipeline tests use, a 64x64 image in one step
    "transformer": {"patch_size": 1, "in_channels": 4, "num_layers": 1, "num_single_layers": 1,
                    "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
                    "pooled_projection_dim": 32, "guidance_embeds": False, "axes_dims_rope": [4, 4, 8]},
    "vae": {"sample_size": 32, "in_channels": 3, "out_channels": 3, "block_out_channels": [4], "layers_per_block": 1,
            "latent_channels": 1, "norm_num_groups": 1, "use_quant_conv": False, "use_post_quant_conv": False,
            "shift_factor": 0.0609, "scaling_factor": 1.5035, "down_block_types": ["DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D"]},
    "text_encoder": {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 77, "projection_dim": 32, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
    "text_encoder_2": {"vocab_size": 1000, "d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 2, "num_heads": 4,
                       "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0},
}


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
    cfg = FLUX if name == "tiny-flux" else CONFIGS[name]
    return hashlib.sha256(json.dumps([cfg, _SCHEDULER, SEED], sort_keys=True).encode()).hexdigest()[:12]


def _t5_tokenizer(folder: Path) -> None:
    """A character-level T5 tokenizer (Unigram over characters, the real one is a download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5TokenizerFast

    vocab = ["<pad>", "</s>", "<unk>"] + list(dict.fromkeys(string.ascii_lowercase + string.digits
                                                               + string.punctuation))
    tk = Tokenizer(models.Unigram([(v, 0.0 if i < 3 else -1.0) for i, v in enumerate(vocab)], unk_id=2))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    T5TokenizerFast(tokenizer_object=tk, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                    extra_ids=0).save_pretrained(folder)


def _build_flux(tmp: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(SEED)
    _tokenizer_files(tmp / "tokenizer")
    _t5_tokenizer(tmp / "tokenizer_2")
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=AutoencoderKL(**FLUX["vae"]),
                        text_encoder=CLIPTextModel(CLIPTextConfig(**FLUX["text_encoder"])),
                        tokenizer=CLIPTokenizer.from_pretrained(tmp / "tokenizer"),
                        text_encoder_2=T5EncoderModel(T5Config(**FLUX["text_encoder_2"])),
                        tokenizer_2=T5TokenizerFast.from_pretrained(tmp / "tokenizer_2"),
                        transformer=FluxTransformer2DModel(**FLUX["transformer"]))
    pipe.save_pretrained(tmp, safe_serialization=True)


def transformer_gguf(folder: Path, qtype: str) -> Path:
    """The synthetic pipeline's transformer as a GGUF file: 2-D weights whose rows are whole blocks quantized to
    ``qtype`` with the gguf package, the rest F32; diffusers' key names (its GGUF loader keeps names it knows).
    Written once beside the pipeline."""
    out = Path(folder) / f"transformer-{qtype}.gguf"
    if out.exists():
        return out
    import gguf
    import numpy as np
    from diffusers import FluxTransformer2DModel

    qt = getattr(gguf.GGMLQuantizationType, qtype)
    block = gguf.GGML_QUANT_SIZES[qt][0]
    model = FluxTransformer2DModel.from_pretrained(folder, subfolder="transformer")
    tmp = out.with_name(out.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "flux")
    for name, t in model.state_dict().items():
        a = t.detach().float().numpy()
        if a.ndim == 2 and a.shape[-1] % block == 0:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)
        else:
            w.add_tensor(name, a.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)
    return out


def ensure(name: str) -> Path:
    """The pipeline folder for ``synthetic:NAME``, built on first use."""
    folder = cache_dir("diffusers") / f"{name}-{_key(name)}"
    if (folder / "model_index.json").exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    if name == "tiny-flux":
        _build_flux(tmp)
        (tmp / "SYNTHETIC").write_text(f"seeded random weights (seed {SEED}), tiny Flux configs; images are noise\n")
        tmp.rename(folder)
        return folder
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
