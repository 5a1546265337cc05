"""Suite keys as data: a key's type(s), default, check and what is expected. Import-light (no backend, no torch)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Key:
    """One allowed key: its type(s), default, an extra check and how to describe what is expected."""

    types: tuple[type, ...]
    expected: str
    default: Any = None
    required: bool = False
    check: Callable[[Any], bool] | None = None


INT32_MAX = 2**31 - 1  # the engines' C int: a larger value would be truncated silently by the bindings


def _all(*checks):
    return lambda v: all(c(v) for c in checks if c is not None)


def int_key(expected="an integer", default=None, required=False, check=None) -> Key:
    """An integer within a C int (what llama.cpp, CTranslate2 and onnxruntime take) and ``check``."""
    return Key((int,), expected, default, required, _all(lambda v: -INT32_MAX - 1 <= v <= INT32_MAX, check))


def str_key(expected="a string", default=None, required=False, check=None) -> Key:
    return Key((str,), expected, default, required, check)


def number_key(expected: str, default=None, check=None) -> Key:
    """A finite number (TOML allows inf and nan) and ``check``."""
    return Key((float, int), expected, default, False, _all(math.isfinite, check))


def bool_key(expected="true or false", default=False) -> Key:
    return Key((bool,), expected, default)


def tests_key(parse: Callable[[str], Any], expected: str, default=None) -> Key:
    """The ``tests`` key of a kind: a non-empty list whose every entry the kind's own parser accepts (the same
    parser its backend uses, so validation and running can never disagree)."""
    return Key((list,), expected, default, default is None,
               check=lambda v: len(v) > 0 and all(isinstance(t, str) and parse(t) is not None for t in v))


def fixed_tests(*names: str) -> tuple[Callable[[str], str | None], Key]:
    """A kind with a fixed set of tests: its parser and its ``tests`` key (default: all of them)."""
    def parse(t: str) -> str | None:
        return t if t in names else None
    return parse, tests_key(parse, f"a list of tests from {', '.join(names)}", list(names))


MODEL = Key((str, dict), 'a model: "bundled:NAME", "ollama:NAME" (a GGUF Ollama has pulled), a file path, or a '
            'table {hf_repo, hf_file, revision}', required=True)
DEVICE = str_key('"auto", "cpu" or "cuda"', "auto", check=lambda v: v in ("auto", "cpu", "cuda"))


def _arch_ok(v) -> bool:
    return (isinstance(v, dict) and set(v) == {"n_layers", "n_kv_heads", "head_dim"}
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v.values()))


ARCH = Key((dict,), "a table {n_layers, n_kv_heads, head_dim} of positive integers (for the KV-cache size)", None,
           check=_arch_ok)
N_GPU_LAYERS = int_key("an integer (-1 = all layers)", -1, check=lambda v: v >= -1)
FIT = "fit"
N_GPU_LAYERS_FIT = Key((int, str), 'an integer (-1 = all layers, 0 = none) or "fit" (the layers that fit in the GPU '
                       'memory free now, the rest in RAM; needs arch)', -1,
                       check=lambda v: v == FIT if isinstance(v, str) else -1 <= v <= INT32_MAX)
N_CTX = int_key("an integer >= 64", 2048, check=lambda v: v >= 64)
# keys every kind takes: what the fit check needs to know before a hub model downloads
FIT_KEYS = {"memory_gb": number_key("a number of GB > 0 the model needs where it runs", None, check=lambda v: v > 0)}
