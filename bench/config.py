"""Suite files (TOML) loaded into frozen, validated configuration.

Every problem becomes a one-line ``ConfigError`` naming the file, the key (``workloads[1].repetitions``) and what
was expected. Nothing here imports a backend: the schema of each kind is data, so validating a suite on a CPU-only
box never imports torch.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import ConfigError
from . import models

# --------------------------------------------------------------------------------------------------- key schema


@dataclass(frozen=True)
class Key:
    """One allowed key: its type(s), default, an extra check and how to describe what is expected."""

    types: tuple[type, ...]
    expected: str
    default: Any = None
    required: bool = False
    check: Callable[[Any], bool] | None = None


def _int(expected="an integer", default=None, required=False, check=None):
    return Key((int,), expected, default, required, check)


def _str(expected="a string", default=None, required=False, check=None):
    return Key((str,), expected, default, required, check)


def _threads_ok(v):
    return v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)


THREADS = Key((int, str), 'an integer >= 1 or "auto"', "auto", check=_threads_ok)

SUITE_KEYS = {
    "name": _str("a suite name (letters, digits, - _ .)", required=True,
                 check=lambda v: re.fullmatch(r"[A-Za-z0-9_.-]+", v) is not None),
    "version": _int("an integer >= 1", 1, check=lambda v: v >= 1),
    "description": _str(default=""),
}

# keys that [defaults] sets for every workload and a workload may override
RUN_KEYS = {
    "warmups": _int("an integer >= 0", 1, check=lambda v: v >= 0),
    "repetitions": _int("an integer >= 1", 3, check=lambda v: v >= 1),
    "threads": THREADS,
    "cv_warn": Key((float, int), "a number between 0 and 1", 0.10, check=lambda v: 0 < v <= 1),
}

METERS = ("auto", "nvml", "rapl", "estimate", "none")
ENERGY_KEYS = {
    "meter": _str(f"one of {', '.join(METERS)}", "auto", check=lambda v: v in METERS),
    "idle_s": Key((float, int), "a number of seconds >= 0", 10.0, check=lambda v: v >= 0),
    "sample_hz": Key((float, int), "a number of samples per second between 1 and 100", 10.0,
                     check=lambda v: 1 <= v <= 100),
    "cpu_w_per_core": Key((float, int), "watts per busy CPU thread (> 0) for the labeled estimate", None,
                          check=lambda v: v > 0),
}

MODEL = Key((str, dict), 'a model: "bundled:NAME", a file path, or a table {hf_repo, hf_file, revision}',
            required=True)


def _tests_key(allowed: tuple[str, ...]) -> Key:
    return Key((list,), f"a list of tests from {', '.join(allowed)}", list(allowed),
               check=lambda v: len(v) > 0 and all(t in allowed for t in v))


def _endpoint_test_ok(v) -> bool:
    return isinstance(v, str) and re.fullmatch(r"c[1-9]\d*|r\d+(\.\d+)?", v) is not None and v != "r0"


def _llm_test_ok(v) -> bool:
    return isinstance(v, str) and parse_llm_test(v) is not None


def _arch_ok(v) -> bool:
    return (isinstance(v, dict) and set(v) == {"n_layers", "n_kv_heads", "head_dim"}
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v.values()))


# keys every kind takes: what the fit check needs to know before a hub model downloads
FIT_KEYS = {
    "memory_gb": Key((float, int), "a number of GB > 0 the model needs where it runs", None, check=lambda v: v > 0),
}
ARCH = Key((dict,), "a table {n_layers, n_kv_heads, head_dim} of positive integers (for the KV-cache size)", None,
           check=_arch_ok)


# per kind: the backend module (imported only when a workload of that kind runs) and its own keys
KINDS: dict[str, dict[str, Any]] = {
    "llm": {
        "module": "bench.backends.llm",
        "keys": {
            "model": MODEL,
            "tests": Key((list,), 'a non-empty list of tests like "pp512", "tg128", "pp500+tg200"',
                         required=True, check=lambda v: len(v) > 0 and all(_llm_test_ok(t) for t in v)),
            "n_gpu_layers": _int("an integer (-1 = all layers)", -1, check=lambda v: v >= -1),
            "n_ctx": _int("an integer >= 64", 2048, check=lambda v: v >= 64),
            "n_batch": _int("an integer >= 1", 512, check=lambda v: v >= 1),
            "n_ubatch": _int("an integer >= 1", 512, check=lambda v: v >= 1),
            "flash_attn": Key((bool,), "true or false", True),
            "seed": _int(default=0),
            "arch": ARCH,
            **FIT_KEYS,
        },
    },
    "asr": {
        "module": "bench.backends.asr",
        "keys": {
            "model": MODEL,
            "tests": _tests_key(("transcribe",)),
            "audio": _str('"reference" (the built-in texts synthesized once with Piper) or a folder of name.wav + '
                          'name.txt', "reference"),
            "reference_voice": _str('the Piper voice for the reference audio ("bundled:NAME" or a path)',
                                    "bundled:piper-joe-medium"),
            "device": _str('"auto", "cpu" or "cuda"', "auto", check=lambda v: v in ("auto", "cpu", "cuda")),
            "compute_type": _str('"auto" (float16 on CUDA, int8 on CPU) or a CTranslate2 compute type', "auto"),
            "beam_size": _int("an integer >= 1", 5, check=lambda v: v >= 1),
            "language": _str("a language code", "en"),
            **FIT_KEYS,
        },
    },
    "image": {
        "module": "bench.backends.image",
        "keys": {
            "model": Key((str, dict), 'an image model: "synthetic:tiny", "synthetic:sd15", a diffusers pipeline folder, '
                         'or {hf_repo, revision}', required=True),
            "tests": _tests_key(("txt2img",)),
            "steps": _int("an integer >= 1 (denoising steps)", 4, check=lambda v: v >= 1),
            "images": _int("an integer >= 1 (images per call)", 1, check=lambda v: v >= 1),
            "width": _int("a multiple of 8 (0 = the model's default)", 0, check=lambda v: v >= 0 and v % 8 == 0),
            "height": _int("a multiple of 8 (0 = the model's default)", 0, check=lambda v: v >= 0 and v % 8 == 0),
            "guidance_scale": Key((float, int), "a number >= 0", 7.5, check=lambda v: v >= 0),
            "device": _str('"auto", "cpu" or "cuda"', "auto", check=lambda v: v in ("auto", "cpu", "cuda")),
            "seed": _int(default=0),
            "variant": _str('a weights variant such as "fp16" ("" = the default files)', ""),
            **FIT_KEYS,
        },
    },
    "endpoint": {
        "module": "bench.backends.endpoint",
        "keys": {
            "model": Key((str, dict), 'the GGUF model to serve when spawn = true ("bundled:NAME", a path, or '
                         '{hf_repo, hf_file})', None),
            "tests": Key((list,), 'a list of steps like "c1", "c4" (requests in flight) or "r0.5" (requests/s)',
                         ["c1", "c2", "c4", "c8", "c16"], check=lambda v: len(v) > 0 and all(_endpoint_test_ok(t) for t in v)),
            "base_url": _str('an OpenAI-compatible base URL like "http://127.0.0.1:11434/v1"', "",
                             check=lambda v: v == "" or v.startswith(("http://", "https://"))),
            "spawn": Key((bool,), "true (start llama-cpp-python's server with the model) or false", False),
            "model_name": _str("the model name the server knows", "local"),
            "api_key_env": _str("the name of an environment variable holding the API key (never written to results)",
                                ""),
            "tokenizer": _str("a GGUF file whose tokenizer counts output tokens when the server reports no usage", ""),
            "prompt_tokens": _int("an integer >= 1", 500, check=lambda v: v >= 1),
            "output_tokens": _int("an integer >= 1", 200, check=lambda v: v >= 1),
            "requests_per_step": _int("an integer >= 1", 8, check=lambda v: v >= 1),
            "timeout_s": Key((float, int), "a number of seconds > 0", 120.0, check=lambda v: v > 0),
            "n_ctx": _int("an integer >= 64", 2048, check=lambda v: v >= 64),
            "n_gpu_layers": _int("an integer (-1 = all layers)", -1, check=lambda v: v >= -1),
            "arch": ARCH,
            **FIT_KEYS,
        },
    },
    "tts": {
        "module": "bench.backends.tts",
        "keys": {
            "model": MODEL,
            "tests": _tests_key(("synthesize",)),
            "use_cuda": Key((bool,), "true or false", False),
            "roundtrip": Key((bool,), "true or false (transcribe the output and record the word error rate)", True),
            "roundtrip_model": _str('the Whisper model for the round trip ("bundled:NAME" or a path)',
                                    "bundled:whisper-tiny.en"),
            **FIT_KEYS,
        },
    },
}

_LLM_TEST = re.compile(r"^(?:pp(?P<pp>\d+))?(?P<plus>\+)?(?:tg(?P<tg>\d+))?$")


def parse_llm_test(name: str) -> tuple[int, int] | None:
    """``pp512`` -> (512, 0); ``tg128`` -> (0, 128); ``pp500+tg200`` -> (500, 200); None if malformed."""
    m = _LLM_TEST.match(name)
    if not m or not (m["pp"] or m["tg"]) or (m["plus"] and not (m["pp"] and m["tg"])):
        return None
    pp, tg = int(m["pp"] or 0), int(m["tg"] or 0)
    if (m["pp"] and pp < 1) or (m["tg"] and tg < 1):
        return None
    return pp, tg


# ------------------------------------------------------------------------------------------------- frozen config


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str
    model: models.ModelRef
    tests: tuple[str, ...]
    warmups: int
    repetitions: int
    threads: int
    cv_warn: float
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def param(self, key: str):
        return self.params[key]


@dataclass(frozen=True)
class Energy:
    meter: str = "auto"
    idle_s: float = 10.0
    sample_hz: float = 10.0
    cpu_w_per_core: float | None = None


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    version: int
    description: str
    workloads: tuple[Workload, ...]
    energy: Energy = Energy()


def default_threads() -> int:
    import os

    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:  # pragma: no cover - psutil is a dependency
        return os.cpu_count() or 1


def _typename(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _check_table(path: Path, where: str, table: dict, schema: dict[str, Key]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = f"{where}." if where else ""
    for k in table:
        if k not in schema:
            raise ConfigError(path, f"{prefix}{k}", f"one of the known keys ({', '.join(sorted(schema))})",
                              "<an unknown key>")
    for k, spec in schema.items():
        if k not in table:
            if spec.required:
                raise ConfigError(path, f"{prefix}{k}", spec.expected, "<nothing: the key is missing>")
            out[k] = spec.default
            continue
        v = table[k]
        # bool is an int in Python; a boolean is only accepted where bool is named
        ok_type = isinstance(v, spec.types) and not (isinstance(v, bool) and bool not in spec.types)
        if not ok_type or (spec.check is not None and not spec.check(v)):
            raise ConfigError(path, f"{prefix}{k}", spec.expected, v if ok_type else f"<{_typename(v)}: {v!r}>")
        out[k] = v
    return out


def load_suite(path: str | Path, check_models: bool = True) -> Suite:
    """Read and validate a suite file. ``check_models`` also resolves local and bundled models (not hub ones)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(path, "<file>", "an existing suite file", "<no such file>") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "<syntax>", "valid TOML", f"<{e}>") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", "a readable UTF-8 text file", f"<{e}>") from e

    top = {"suite": Key((dict,), "a [suite] table", required=True),
           "defaults": Key((dict,), "a [defaults] table", {}),
           "energy": Key((dict,), "an [energy] table", {}),
           "workloads": Key((list,), "at least one [[workloads]] table", required=True,
                            check=lambda v: len(v) > 0 and all(isinstance(w, dict) for w in v))}
    data = _check_table(path, "", data, top)
    suite = _check_table(path, "suite", data["suite"], SUITE_KEYS)
    defaults = _check_table(path, "defaults", data["defaults"], RUN_KEYS)
    energy = _check_table(path, "energy", data["energy"], ENERGY_KEYS)

    workloads = []
    names = set()
    for i, raw in enumerate(data["workloads"]):
        where = f"workloads[{i}]"
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ConfigError(path, f"{where}.kind", f"one of {', '.join(sorted(KINDS))}",
                              kind if kind is not None else "<nothing: the key is missing>")
        schema = {"name": _str("a workload name", required=True), "kind": _str(required=True),
                  **{k: Key(s.types, s.expected, None, False, s.check) for k, s in RUN_KEYS.items()},
                  **KINDS[kind]["keys"]}
        w = _check_table(path, where, raw, schema)
        if w["name"] in names:
            raise ConfigError(path, f"{where}.name", "a name no other workload of the suite has", w["name"])
        names.add(w["name"])
        run = {k: (w[k] if w[k] is not None else defaults[k]) for k in RUN_KEYS}
        threads = default_threads() if run["threads"] == "auto" else run["threads"]
        if kind == "endpoint":
            if w["spawn"] == bool(w["base_url"]):
                raise ConfigError(path, f"{where}.base_url", "either base_url or spawn = true (with a model), not both",
                                  w["base_url"] or "<neither>")
            if w["spawn"] and w["model"] is None:
                raise ConfigError(path, f"{where}.model", "a GGUF model to serve with spawn = true",
                                  "<nothing: the key is missing>")
            if w["tokenizer"]:
                tok = models.parse_ref(w["tokenizer"], path, f"{where}.tokenizer")
                if check_models:
                    models.check(tok, path, f"{where}.tokenizer")
                w["tokenizer"] = str(models.resolve(tok)) if check_models else tok.name
        if w["model"] is None:
            model = models.ModelRef("remote", f"{w.get('model_name', '')}@{w.get('base_url', '')}")
        else:
            model = models.parse_ref(w["model"], path, f"{where}.model")
        if check_models and model.source != "remote":
            models.check(model, path, f"{where}.model")
        if kind == "asr" and w["audio"] != "reference":
            folder = Path(w["audio"]).expanduser()
            folder = folder if folder.is_absolute() else (path.parent / folder).resolve()
            if check_models and not folder.is_dir():
                raise ConfigError(path, f"{where}.audio", '"reference" or an existing folder of name.wav + name.txt',
                                  w["audio"])
            w["audio"] = str(folder)
        for key in ("reference_voice", "roundtrip_model"):
            if key in w:
                ref = models.parse_ref(w[key], path, f"{where}.{key}")
                if check_models:
                    models.check(ref, path, f"{where}.{key}")
                w[key] = ref
        params = {k: v for k, v in w.items() if k in KINDS[kind]["keys"] and k not in ("model", "tests")}
        workloads.append(Workload(
            name=w["name"], kind=kind, model=model, tests=tuple(w["tests"]),
            warmups=run["warmups"], repetitions=run["repetitions"], threads=threads, cv_warn=float(run["cv_warn"]),
            params=MappingProxyType(params)))
    return Suite(path=path, name=suite["name"], version=suite["version"], description=suite["description"],
                 workloads=tuple(workloads),
                 energy=Energy(meter=energy["meter"], idle_s=float(energy["idle_s"]),
                               sample_hz=float(energy["sample_hz"]),
                               cpu_w_per_core=None if energy["cpu_w_per_core"] is None
                               else float(energy["cpu_w_per_core"])))
