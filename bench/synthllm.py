"""Synthetic LLM weights: a published model's GGUF with seeded random weights, in the exact layout of the published
file (`model = "synthetic:llama3.1-8b-q4_k_m"`).

Token throughput, memory and energy of a GGUF on a card depend on its tensor shapes and types, not on the values of
its weights. So the file written here has the architecture's shapes (``bench/llm_archs.toml``, from each model's
published config), llama.cpp's own per-tensor type choices for the quantization (``llama_tensor_get_type`` in the
vendored ``src/llama-quant.cpp``: which tensors Q4_K_M keeps at Q6_K or Q5_K, the output tensor, the token
embedding) and the real tokenizer (llama.cpp's vocab-only test files), so prompts tokenize as the real model's do.
The weights are random quantized blocks with fixed, finite scales (centred, about 0.02 in size, so no forward pass
overflows), written directly: no quantizer runs. A file is made once per (architecture, quantization, seed, version)
into the cache folder, and its answers are noise: for speed, energy and memory fit before a download, and for a GPU
check on a box with no network, never for quality.
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .cache import cache_dir
from .errors import ConfigError, ShadowbenchError

VERSION = 1  # of the writer: a change of layout or value scheme makes new files
SEED = 1234
ARCHS_FILE = Path(__file__).resolve().parent / "llm_archs.toml"
QUANTS = {"q4_k_m": ("Q4_K", 15), "q8_0": ("Q8_0", 7), "f16": ("F16", 1)}  # default type, llama_ftype
MARK = "shadowbench.synthetic"  # the GGUF key that says a file's weights are synthetic (and which)

# bytes per block and weights per block of each ggml type (ggml-common.h)
BLOCK = {"F32": (4, 1), "F16": (2, 1), "Q8_0": (34, 32), "Q4_K": (144, 256), "Q5_K": (176, 256),
         "Q6_K": (210, 256)}
WEIGHT_SIZE = 0.035  # weights spread uniformly over about ±0.035 (std 0.02)


@dataclass(frozen=True)
class Arch:
    name: str
    label: str
    source: str
    gguf_arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    rope_theta: float
    rms_eps: float
    n_ctx_train: int
    vocab: str
    rope_scaling: dict = field(default_factory=dict)
    long_rope: dict = field(default_factory=dict)
    size_class_70b: bool = False
    published: dict = field(default_factory=dict)
    published_source: str = ""
    test_only: bool = False

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def archs() -> dict[str, Arch]:
    data = tomllib.loads(ARCHS_FILE.read_text())
    return {v["name"]: Arch(**v) for v in data.values()}


def names() -> list[str]:
    """Every ``synthetic:`` LLM name: architecture-quantization."""
    return [f"{a}-{q}" for a in archs() for q in QUANTS]


def parse(name: str) -> tuple[Arch, str]:
    """(architecture, quantization) of a synthetic name; ConfigError naming the choices."""
    for q in QUANTS:
        if name.endswith("-" + q) and name[: -len(q) - 1] in archs():
            return archs()[name[: -len(q) - 1]], q
    raise ConfigError("<model>", "model", "synthetic:<arch>-<quant> with arch one of " + ", ".join(archs())
                      + " and quant one of " + ", ".join(QUANTS), f"synthetic:{name}")


def is_llm(name: str) -> bool:
    try:
        parse(name)
    except ConfigError:
        return False
    return True


# ------------------------------------------------------------------------------------------------- the tensor table
def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _type(a: Arch, quant: str, category: str, i: int) -> str:
    """llama.cpp's choice for one 2-D tensor (``llama_tensor_get_type`` for these ftypes and dense models)."""
    default = QUANTS[quant][0]
    if quant == "f16":  # not a quantized type: no rules apply, every matrix F16
        return "F16"
    if category == "output":
        return "Q8_0" if default == "Q8_0" else "Q6_K"
    if quant != "q4_k_m":
        return default
    if category == "attn_v":
        t = "Q6_K" if _use_more_bits(i, a.n_layer) else default
        if a.size_class_70b and t == "Q4_K":
            t = "Q5_K"
        return t
    if category == "ffn_down":
        return "Q6_K" if _use_more_bits(i, a.n_layer) else default
    if category == "attn_qkv":
        return "Q5_K"
    return default


def tensor_table(a: Arch, quant: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape in GGUF order (ne0 first), ggml type) of every tensor, in the converter's order."""
    t: list[tuple[str, tuple[int, ...], str]] = []
    kv = a.head_dim * a.n_head_kv
    if a.rope_scaling:
        t.append(("rope_freqs.weight", (a.head_dim // 2,), "F32"))
    t.append(("token_embd.weight", (a.n_embd, a.n_vocab), _type(a, quant, "token_embd", 0)))
    for i in range(a.n_layer):
        b = f"blk.{i}."
        t.append((b + "attn_norm.weight", (a.n_embd,), "F32"))
        if a.gguf_arch == "phi3":
            t.append((b + "attn_qkv.weight", (a.n_embd, a.n_embd + 2 * kv), _type(a, quant, "attn_qkv", i)))
            t.append((b + "attn_output.weight", (a.n_embd, a.n_embd), _type(a, quant, "attn_output", i)))
            t.append((b + "ffn_norm.weight", (a.n_embd,), "F32"))
            t.append((b + "ffn_up.weight", (a.n_embd, 2 * a.n_ff), _type(a, quant, "ffn_up", i)))
            t.append((b + "ffn_down.weight", (a.n_ff, a.n_embd), _type(a, quant, "ffn_down", i)))
            continue
        t.append((b + "attn_q.weight", (a.n_embd, a.n_embd), _type(a, quant, "attn_q", i)))
        t.append((b + "attn_k.weight", (a.n_embd, kv), _type(a, quant, "attn_k", i)))
        t.append((b + "attn_v.weight", (a.n_embd, kv), _type(a, quant, "attn_v", i)))
        t.append((b + "attn_output.weight", (a.n_embd, a.n_embd), _type(a, quant, "attn_output", i)))
        t.append((b + "ffn_norm.weight", (a.n_embd,), "F32"))
        t.append((b + "ffn_gate.weight", (a.n_embd, a.n_ff), _type(a, quant, "ffn_gate", i)))
        t.append((b + "ffn_up.weight", (a.n_embd, a.n_ff), _type(a, quant, "ffn_up", i)))
        t.append((b + "ffn_down.weight", (a.n_ff, a.n_embd), _type(a, quant, "ffn_down", i)))
    t.append(("output_norm.weight", (a.n_embd,), "F32"))
    t.append(("output.weight", (a.n_embd, a.n_vocab), _type(a, quant, "output", 0)))
    if a.long_rope:
        t.append(("rope_factors_long.weight", (a.head_dim // 2,), "F32"))
        t.append(("rope_factors_short.weight", (a.head_dim // 2,), "F32"))
    return t


def tensor_bytes(shape: tuple[int, ...], typ: str) -> int:
    size, per = BLOCK[typ]
    n = math.prod(shape)
    if shape[0] % per:
        raise ValueError(f"a row of {shape[0]} weights is not whole {typ} blocks of {per}")
    return n // per * size


def data_bytes(a: Arch, quant: str) -> int:
    """The tensor data's bytes, each tensor padded to GGUF's 32-byte alignment (the file adds its metadata)."""
    return sum(-(-tensor_bytes(s, t) // 32) * 32 for _, s, t in tensor_table(a, quant))


def n_params(a: Arch, quant: str = "f16") -> int:
    return sum(math.prod(s) for _, s, _ in tensor_table(a, quant))


# ------------------------------------------------------------------------------------------------------ the values
def _blocks(rng, typ: str, n: int):
    """``n`` weights of ``typ`` as raw bytes, shape (blocks, block bytes): random quants, fixed finite scales."""
    import numpy as np

    size, per = BLOCK[typ]
    nb = n // per
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    f16 = lambda v: np.frombuffer(np.float16(v).tobytes(), dtype=np.uint8)  # noqa: E731
    if typ == "Q8_0":  # d, qs[32] (int8): w = d q
        raw[:, 0:2] = f16(WEIGHT_SIZE / 128)
    elif typ in ("Q4_K", "Q5_K"):  # d, dmin, scales[12], (qh[32],) qs: w = d sc q - dmin m, every sc = m = 15
        levels = 16 if typ == "Q4_K" else 32
        d = WEIGHT_SIZE / (15 * (levels - 1) / 2)
        raw[:, 0:2] = f16(d)
        raw[:, 2:4] = f16(d * (levels - 1) / 2)  # centres the weights on 0
        raw[:, 4:12] = 15  # 6-bit scales and mins of sub-blocks 0-3 (top bits 0)
        raw[:, 12:16] = 0xFF  # sub-blocks 4-7: low nibbles scale 15, high nibbles min 15
    elif typ == "Q6_K":  # ql[128], qh[64], scales[16] (int8), d: w = d sc (q - 32)
        raw[:, 192:208] = 16
        raw[:, 208:210] = f16(WEIGHT_SIZE / (16 * 32))
    return raw


def _f32_values(a: Arch, name: str):
    import numpy as np

    if name == "rope_freqs.weight":  # Llama 3's RoPE scaling, as llama.cpp's converter computes it
        r, dim = a.rope_scaling, a.head_dim
        freqs = 1.0 / (a.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
        low_wl, high_wl = r["original_context"] / r["low_freq_factor"], r["original_context"] / r["high_freq_factor"]
        out = []
        for f in freqs:
            wl = 2 * math.pi / f
            if wl < high_wl:
                out.append(1.0)
            elif wl > low_wl:
                out.append(r["factor"])
            else:
                s = (r["original_context"] / wl - r["low_freq_factor"]) / (r["high_freq_factor"] - r["low_freq_factor"])
                out.append(1 / ((1 - s) / r["factor"] + s))
        return np.array(out, dtype=np.float32)
    return None  # norms and LongRoPE factors: ones


# -------------------------------------------------------------------------------------------------------- the file
def read_kv(path: Path) -> dict[str, tuple[object, int, int | None]]:
    """A GGUF file's key-value metadata: key -> (value, GGUF value type, array element type). Read directly (the
    gguf package's reader takes ~30 s on a 128k-token vocabulary; this takes under a second)."""
    import struct

    data = Path(path).read_bytes()
    if data[:4] != b"GGUF":
        raise ShadowbenchError(f"{path} is not a GGUF file")
    _, _, n_kv = struct.unpack_from("<IQQ", data, 4)
    off = 24
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def string():
        nonlocal off
        (n,) = struct.unpack_from("<Q", data, off)
        off += 8 + n
        return data[off - n:off].decode("utf-8")

    def value(t):
        nonlocal off
        if t == 8:
            return string()
        fmt = scalar[t]
        (v,) = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v

    out = {}
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", data, off)
        off += 4
        if t == 9:
            sub, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if sub == 8:
                out[key] = ([string() for _ in range(n)], t, sub)
            else:
                fmt = scalar[sub]
                size = struct.calcsize(fmt)
                out[key] = (list(struct.unpack_from(f"<{n}{fmt[1]}", data, off)), t, sub)
                off += n * size
        else:
            out[key] = (value(t), t, None)
    return out


def _vocab_fields(a: Arch) -> list[tuple[str, object, object, object]]:
    """(key, value, type, array element type) of the tokenizer, from llama.cpp's vocab file; padded with control
    tokens to the architecture's vocabulary (Mistral v0.3's 768 over Llama 2's)."""
    import gguf

    from .llamacpp import vocab_file

    kv = read_kv(vocab_file(a.vocab))
    out = [[k, v, gguf.GGUFValueType(t), gguf.GGUFValueType(sub) if sub is not None else None]
           for k, (v, t, sub) in kv.items() if k.startswith("tokenizer.")]
    by = {k: i for i, (k, *_) in enumerate(out)}
    tokens = out[by["tokenizer.ggml.tokens"]][1]
    if len(tokens) > a.n_vocab:
        raise ShadowbenchError(f"{a.name}: the {a.vocab} vocabulary has {len(tokens)} tokens, more than {a.n_vocab}")
    extra = a.n_vocab - len(tokens)
    if extra:
        out[by["tokenizer.ggml.tokens"]][1] = tokens + [f"[control_{len(tokens) + i}]" for i in range(extra)]
        out[by["tokenizer.ggml.token_type"]][1] = out[by["tokenizer.ggml.token_type"]][1] + [3] * extra  # CONTROL
        if "tokenizer.ggml.scores" in by:
            out[by["tokenizer.ggml.scores"]][1] = out[by["tokenizer.ggml.scores"]][1] + [0.0] * extra
    return [tuple(x) for x in out]


def write(name: str, path: Path, seed: int = SEED, progress=None) -> Path:
    """Write the synthetic GGUF ``name`` to ``path`` (through a temporary file: never a half file under the name).
    ``progress(done_bytes, total_bytes)`` is called as tensors are written."""
    import gguf
    import numpy as np

    a, quant = parse(name)
    table = tensor_table(a, quant)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    w = gguf.GGUFWriter(tmp, a.gguf_arch)
    p = a.gguf_arch
    w.add_name(f"{a.label} synthetic ({quant.upper()})")
    w.add_string(MARK, f"{a.name}-{quant} seed {seed} v{VERSION}: random weights of the published shapes")
    w.add_uint32(f"{p}.block_count", a.n_layer)
    w.add_uint32(f"{p}.context_length", a.n_ctx_train)
    w.add_uint32(f"{p}.embedding_length", a.n_embd)
    w.add_uint32(f"{p}.feed_forward_length", a.n_ff)
    w.add_uint32(f"{p}.attention.head_count", a.n_head)
    w.add_uint32(f"{p}.attention.head_count_kv", a.n_head_kv)
    w.add_float32(f"{p}.rope.freq_base", a.rope_theta)
    w.add_float32(f"{p}.attention.layer_norm_rms_epsilon", a.rms_eps)
    w.add_uint32(f"{p}.rope.dimension_count", a.head_dim)
    if a.gguf_arch == "llama":
        w.add_uint32(f"{p}.vocab_size", a.n_vocab)
    if a.long_rope:
        w.add_uint32(f"{p}.rope.scaling.original_context_length", a.long_rope["original_context"])
    w.add_uint32("general.file_type", QUANTS[quant][1])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, value, vtype, sub in _vocab_fields(a):
        w.add_key_value(key, value, vtype, sub_type=sub)
    for tname, shape, typ in table:
        nbytes = tensor_bytes(shape, typ)
        if typ in ("F32", "F16"):
            w.add_tensor_info(tname, tuple(reversed(shape)), np.dtype(np.float32 if typ == "F32" else np.float16),
                              nbytes)
        else:
            per = BLOCK[typ]
            byte_shape = (shape[1], shape[0] // per[1] * per[0]) if len(shape) == 2 else (shape[0] // per[1] * per[0],)
            w.add_tensor_info(tname, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=gguf.GGMLQuantizationType[typ])
    total, done = sum(tensor_bytes(s, t) for _, s, t in table), 0
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        rng = np.random.default_rng(seed)
        for tname, shape, typ in table:
            n = math.prod(shape)
            if typ == "F32":
                v = _f32_values(a, tname)
                data = v if v is not None else np.ones(n, dtype=np.float32)
            elif typ == "F16":
                data = ((rng.random(n, dtype=np.float32) - 0.5) * (2 * WEIGHT_SIZE)).astype(np.float16)
            else:
                data = _blocks(rng, typ, n)
            w.write_tensor_data(data.reshape(-1) if data.ndim > 1 and typ in ("F32", "F16") else data)
            done += data.nbytes
            if progress is not None:
                progress(done, total)
        w.close()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cached_path(name: str, seed: int = SEED) -> Path:
    return cache_dir("synthetic-llm") / f"{name}-seed{seed}-v{VERSION}.gguf"


def ensure(name: str, seed: int = SEED, log=None) -> Path:
    """The synthetic GGUF, written once into the cache (disk checked first, with a progress bar), reused by name,
    seed and writer version."""
    path = cached_path(name, seed)
    if path.is_file():
        return path
    a, quant = parse(name)
    need = data_bytes(a, quant) + 64 * 2**20  # the tokenizer and headers: a few MB
    path.parent.mkdir(parents=True, exist_ok=True)
    import shutil

    free = shutil.disk_usage(path.parent).free
    if free < need * 1.05:
        raise ShadowbenchError(f"not enough disk for synthetic:{name}: needs {need / 1e9:.2f} GB in {path.parent}, "
                               f"{free / 1e9:.2f} GB free")
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"writing synthetic:{name} (once, {need / 1e9:.2f} GB)", total=need)
        write(name, path, seed, progress=lambda done, total: bar.update(task, completed=done, total=total))
    return path
