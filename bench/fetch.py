"""Before a hub model downloads or loads: is there disk for it, and will it fit the card?

Sizes come from the Hugging Face cache when the model is there (so ``HF_HUB_OFFLINE=1`` works), else from the
hub's file metadata. A model larger than the memory it would run in is skipped with the sizes named; a download
that would not fit on disk is refused before it starts. Downloads themselves go through huggingface_hub
(``hf_hub_download``/``snapshot_download``): its standard cache, progress bars, resumable, ``HF_TOKEN`` and
``HF_HUB_OFFLINE`` honored.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import DeviceUnavailable, ModelNotFound
from .models import ModelRef

GB = 1e9
RUNTIME_OVERHEAD_GB = 0.6  # CUDA context and compute buffers beside the weights and KV cache (assumption)


@dataclass(frozen=True)
class Need:
    download_bytes: int  # what still has to come over the network (0 when cached)
    model_bytes: int
    memory_bytes: int  # what the model needs where it runs
    detail: str


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_size(ref: ModelRef) -> tuple[int, bool]:
    """(bytes, already cached) of a hub file, or of a whole repository snapshot when the ref names no file."""
    from huggingface_hub import HfApi, scan_cache_dir, try_to_load_from_cache

    rev = ref.revision or None
    if ref.file:
        files = [ref.file] + ([ref.file + ".json"] if ref.file.endswith(".onnx") else [])
        cached = [try_to_load_from_cache(ref.name, f, revision=rev) for f in files]
        if all(isinstance(c, str) for c in cached):
            return sum(os.path.getsize(c) for c in cached), True
        if _offline():
            raise ModelNotFound(f"{ref.label()}: not in the Hugging Face cache ({hub_cache_dir()}) and "
                                "HF_HUB_OFFLINE is set")
        try:
            infos = HfApi().get_paths_info(ref.name, files, revision=rev)
        except Exception as e:  # noqa: BLE001 - no network, no such repo, a hub error: one line
            raise ModelNotFound(f"{ref.label()}: could not ask the Hugging Face hub ({_one_line(e)})") from None
        if len(infos) != len(files):
            raise ModelNotFound(f"{ref.label()}: the repository has no file {ref.file}")
        return sum(int(i.size or 0) for i in infos), False
    try:
        for repo in scan_cache_dir(hub_cache_dir()).repos:
            if repo.repo_id == ref.name and repo.revisions:
                files = [f for r in repo.revisions for f in r.files if _included(f.file_name, ref)]
                if files:
                    return sum(f.size_on_disk for f in files), True
    except Exception:  # noqa: BLE001 - no cache yet
        pass
    if _offline():
        raise ModelNotFound(f"{ref.label()}: not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    try:
        info = HfApi().model_info(ref.name, revision=rev, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - no network, no such repo, a hub error: one line
        raise ModelNotFound(f"{ref.label()}: could not ask the Hugging Face hub ({_one_line(e)})") from None
    return sum(int(s.size or 0) for s in info.siblings or [] if _included(s.rfilename, ref)), False


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _included(name: str, ref: ModelRef) -> bool:
    from fnmatch import fnmatch

    return not ref.include or any(fnmatch(name, pat) or fnmatch(Path(name).name, pat) for pat in ref.include)


def kv_layer_bytes(n_ctx: int, arch: dict) -> int:
    """f16 K and V of one layer: 2 × context × KV heads × head size × 2 bytes (0 without arch)."""
    return 2 * n_ctx * arch["n_kv_heads"] * arch["head_dim"] * 2 if arch else 0


def kv_cache_bytes(n_ctx: int, arch: dict) -> int:
    """f16 K and V for every layer."""
    return arch["n_layers"] * kv_layer_bytes(n_ctx, arch) if arch else 0


@dataclass(frozen=True)
class Split:
    """Partial offload: the last ``n_gpu_layers`` of ``n_layers`` repeating layers on the GPU (llama.cpp offloads
    from the top), the rest and the token embeddings in RAM; all layers and the output head when everything fits."""

    n_gpu_layers: int  # what llama.cpp is given: -1 when every layer and the output head fit
    layers_on_gpu: int
    n_layers: int
    gpu_bytes: int  # weights + KV cache of the offloaded layers + the runtime overhead
    ram_bytes: int  # weights + KV cache of the layers left in RAM, token embeddings (and the output head)
    estimated: bool  # from the file size and arch (before a download), not the file's tensor table
    detail: str


def split_layers(layers: list[int], token_embd: int, output: int, kv_per_layer: int, free_gpu: int,
                 overhead: int = int(RUNTIME_OVERHEAD_GB * GB), estimated: bool = False) -> Split:
    """As many of the top layers as fit in ``free_gpu`` bytes with their KV cache and the runtime overhead."""
    n = len(layers)
    weights = sum(layers) + token_embd + output
    for k in range(n, -1, -1):
        on = sum(layers[n - k:]) + (output if k == n else 0)
        gpu = on + k * kv_per_layer + (overhead if k else 0)
        if gpu <= free_gpu:
            ram = weights - on + (n - k) * kv_per_layer
            what = ("all layers and the output head" if k == n else f"{k} of {n} layers")
            return Split(-1 if k == n else k, k, n, gpu, ram, estimated,
                         f"{what} on the GPU ({gpu / GB:.1f} GB with KV cache and runtime), {ram / GB:.1f} GB in RAM"
                         + (" (estimated from the file size: the exact split is made from the file's tensors)"
                            if estimated else ""))
    raise AssertionError("k = 0 always fits")


def gguf_layers(path: Path) -> tuple[list[int], int, int]:
    """Bytes per repeating layer (``blk.N.*``), of the token embeddings and of the output head (and final norm),
    from a GGUF file's tensor table (nothing is loaded)."""
    from gguf import GGUFReader

    blocks: dict[int, int] = {}
    embd = out = 0
    for t in GGUFReader(str(path)).tensors:
        if t.name.startswith("blk."):
            i = int(t.name.split(".")[1])
            blocks[i] = blocks.get(i, 0) + int(t.n_bytes)
        elif t.name.startswith("token_embd"):
            embd += int(t.n_bytes)
        else:
            out += int(t.n_bytes)
    return [blocks[i] for i in sorted(blocks)], embd, out


def estimated_split(model_bytes: int, arch: dict, n_ctx: int, free_gpu: int) -> Split:
    """Before the file is here: the file's bytes spread over its layers (the embeddings counted as layers: a
    slight overestimate per layer, so never more layers than fit)."""
    n = arch["n_layers"]
    return split_layers([model_bytes // n] * n, 0, 0, kv_layer_bytes(n_ctx, arch), free_gpu, estimated=True)


def file_split(path: Path, arch: dict, n_ctx: int, free_gpu: int) -> Split:
    layers, embd, out = gguf_layers(path)
    return split_layers(layers, embd, out, kv_layer_bytes(n_ctx, arch), free_gpu)


def split_ram_reason(s: Split, ram_bytes: float) -> str | None:
    """Why the part of a split left in RAM does not fit the box's RAM, or None."""
    if s.ram_bytes <= ram_bytes:
        return None
    return (f"split by layer: {s.detail}; the part in RAM needs {s.ram_bytes / GB:.1f} GB and the box has "
            f"{ram_bytes / GB:.1f} GB")


def gpu_free_bytes(gpus: list[dict]) -> int:
    """The memory free now on the first card (llama.cpp's split across several cards is its own business)."""
    g = gpus[0]
    return int((g["memory_free_gb"] if g.get("memory_free_gb") is not None else g["memory_total_gb"]) * GB)


def sized(ref: ModelRef) -> bool:
    """Whether a model's size is known before it is on disk: a hub file (its listing), synthetic LLM weights (their
    architecture): the fit and disk checks run first for these."""
    if ref.source == "synthetic":
        from .synthllm import is_llm

        return is_llm(ref.name)
    return ref.source == "hf"


def need(kind: str, ref: ModelRef, params: dict) -> Need:
    if ref.source == "synthetic":  # generated here: nothing comes over the network
        from . import synthllm

        a, q = synthllm.parse(ref.name)
        return _need_of(kind, params, synthllm.data_bytes(a, q), 0)
    size, cached = hub_size(ref)
    g = params.get("transformer_gguf")
    if isinstance(g, dict):  # an image pipeline's transformer from a hub GGUF file: its download counts too
        g_size, g_cached = hub_size(ModelRef("hf", g["hf_repo"], g.get("hf_file", ""), g.get("revision", "")))
        return _need_of(kind, params, size + g_size, (0 if cached else size) + (0 if g_cached else g_size))
    return _need_of(kind, params, size, 0 if cached else size)


def _need_of(kind: str, params: dict, size: int, download: int) -> Need:
    declared = params.get("memory_gb") or 0
    if declared:  # the suite's own figure wins for every kind
        mem, detail = int(declared * GB), f"declared {declared:g} GB (memory_gb)"
    elif kind in ("llm", "endpoint"):
        kv = kv_cache_bytes(params.get("n_ctx", 2048), params.get("arch") or {})
        mem = int(size + kv + RUNTIME_OVERHEAD_GB * GB)
        detail = (f"model {size / GB:.2f} GB + KV cache {kv / GB:.2f} GB for n_ctx {params.get('n_ctx')} "
                  f"+ {RUNTIME_OVERHEAD_GB} GB runtime")
    else:
        mem, detail = int(size * 1.2), f"files {size / GB:.2f} GB × 1.2"
    return Need(download_bytes=download, model_bytes=size, memory_bytes=mem, detail=detail)


def check_disk(n: Need, where: Path | None = None) -> None:
    """Refuse a download that would not fit on disk, before it starts."""
    if n.download_bytes == 0:
        return
    where = Path(where or hub_cache_dir())
    probe = where
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    margin = 1 * GB
    if free < n.download_bytes + margin:
        raise DeviceUnavailable(f"not enough disk for the download: needs {n.download_bytes / GB:.2f} GB "
                                f"(+{margin / GB:.0f} GB margin) in {where}, {free / GB:.2f} GB free")


def holders(gpus: list[dict], own_pid: int | None = None) -> str:
    """Who holds GPU memory, and how to free it when it is Ollama (which keeps models resident)."""
    own = os.getpid() if own_pid is None else own_pid
    procs = [p for g in gpus for p in g.get("processes", []) if p["pid"] != own]
    if not procs:
        return ""
    names = ", ".join(f"{p['name']} (pid {p['pid']}" + (f", {p['memory_gb']:.1f} GB)" if p.get("memory_gb")
                                                          else ")") for p in procs)
    hint = ("; Ollama frees it with OLLAMA_KEEP_ALIVE=0 or when stopped" if any("ollama" in p["name"].lower()
                                                                              for p in procs) else "")
    return f"held by {names}{hint}"


def fit_reason(kind: str, n: Need, params: dict, gpus: list[dict], ram_gib: float) -> str | None:
    """Why the model will not fit where it would run (in the GPU memory that is free now, other processes' share
    named), or None."""
    on_gpu = bool(gpus) and (params.get("n_gpu_layers", -1) != 0) and params.get("device", "auto") != "cpu"
    if on_gpu and params.get("n_gpu_layers") == "fit" and params.get("arch"):
        s = estimated_split(n.model_bytes, params["arch"], params.get("n_ctx", 2048), gpu_free_bytes(gpus))
        return split_ram_reason(s, ram_gib * 2**30)
    if on_gpu:
        total = sum(g["memory_total_gb"] for g in gpus) * GB
        free = sum(g["memory_free_gb"] if g.get("memory_free_gb") is not None else g["memory_total_gb"]
                   for g in gpus) * GB
        have = free
        held = holders(gpus)
        where = (f"the GPU{'s' if len(gpus) > 1 else ''} ({', '.join(g['name'] for g in gpus)}) has "
                 f"{free / GB:.1f} GB free of {total / GB:.1f} GB" + (f", {held}" if held else ""))
    else:
        have = ram_gib * 2**30
        where = f"RAM {have / GB:.1f} GB"
    if n.memory_bytes > have:
        return f"needs {n.memory_bytes / GB:.2f} GB ({n.detail}); {where}"
    return None
