"""What a model's output is worth, as llama.cpp's ``llama-perplexity`` measures it: perplexity over a fixed text and
the KL divergence of a model's next-token distribution from a base model's (a quantization from full precision).

The text is split as ``llama-perplexity`` splits it: the whole text tokenized once (BOS where the model wants one),
cut into chunks of ``n_ctx`` tokens (at least two), each evaluated from an empty cache with its first token replaced
by BOS where the model adds one, and only the second half of each chunk scored (each scored token has at least
``n_ctx / 2`` tokens of context). A scored position's negative log-likelihood is that of the next token under the
model's softmax; perplexity is exp(mean NLL).

The base's log-probabilities are kept in llama.cpp's own ``--kl-divergence-base`` file format, so a file made here
can be read by ``llama-perplexity --kl-divergence`` and the other way round: ``_logits_``, int32 n_ctx, int32
n_vocab, int32 n_chunk, the n_chunk × n_ctx int32 tokens, then per scored position ``nv = 2*((n_vocab+1)/2)+4``
uint16: a float32 scale and a float32 minimum log-probability, then each token's log-probability as
``min + scale * q`` over a 16-nat range (so a base compared with itself gives a KLD of about 1e-6, not exactly 0).
KLD per position is Σ p_base (log p_base − log p_model) over the tokens whose base log-probability is above −16, as
``llama-perplexity`` sums it; its mean, 99th percentile (linear interpolation) and the share of positions where the
two models' most likely tokens agree are what the rows carry.

Pure numpy on arrays of logits: the backend produces the logits, this module scores them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BackendError

TEXTS = Path(__file__).parent / "texts"
REFERENCE = "a-scandal-in-bohemia"  # Arthur Conan Doyle, 1891: public domain (see bench/texts/README.md)
MAGIC = b"_logits_"
LOG_RANGE = 16.0  # nats below the most likely token that the base file resolves (llama.cpp's constant)


def bundled_texts() -> list[str]:
    return sorted(p.stem for p in TEXTS.glob("*.txt"))


def text_path(name: str) -> Path:
    """A bundled text by name, or a path to the user's own UTF-8 text file."""
    return TEXTS / f"{name}.txt" if name in bundled_texts() else Path(name)


def read_text(name: str) -> str:
    return text_path(name).read_text(encoding="utf-8")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def first_scored(n_ctx: int) -> int:
    return n_ctx // 2


def scored_per_chunk(n_ctx: int) -> int:
    """Scored positions per chunk: first_scored .. n_ctx - 2 (each predicts the token after it)."""
    return n_ctx - 1 - first_scored(n_ctx)


def chunk_count(n_tokens: int, n_ctx: int, max_chunks: int | None) -> int:
    """Chunks of the text, as llama-perplexity counts them; BackendError when the text is too short."""
    if n_tokens < 2 * n_ctx:
        raise BackendError(f"the quality text tokenizes to {n_tokens} tokens; a context of {n_ctx} needs at least "
                           f"{2 * n_ctx} (use a longer text or a smaller quality_ctx)")
    n = n_tokens // n_ctx
    return n if not max_chunks else min(n, max_chunks)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (rows: positions, columns: vocabulary)."""
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


def nll(logits: np.ndarray, next_tokens: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each position's next token."""
    lp = log_softmax(logits)
    return -lp[np.arange(len(next_tokens)), next_tokens]


def row_width(n_vocab: int) -> int:
    """uint16 per scored position in a base file."""
    return 2 * ((n_vocab + 1) // 2) + 4


def quantize_base(logits: np.ndarray) -> np.ndarray:
    """Positions' logits as base-file rows (llama.cpp's ``log_softmax(..., uint16_t * log_prob, ...)``)."""
    k, n_vocab = logits.shape
    x = logits.astype(np.float32)
    mx = x.max(axis=1)
    mn = np.maximum(x.min(axis=1), mx - np.float32(LOG_RANGE))
    lse = np.log(np.exp((x - mx[:, None]).astype(np.float64)).sum(axis=1)).astype(np.float32)
    min_log_prob = (mn - mx - lse).astype(np.float32)
    scale = ((mx - mn) / np.float32(65535)).astype(np.float32)
    out = np.zeros((k, row_width(n_vocab)), dtype=np.uint16)
    head = np.stack([scale, min_log_prob], axis=1).astype(np.float32)
    out[:, :4] = head.view(np.uint16)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(scale > 0, np.float32(1) / scale, np.float32(0)).astype(np.float32)
        q = np.rint(inv[:, None] * (x - mn[:, None])).astype(np.float32)
    q = np.where(x > mn[:, None], q, 0)
    out[:, 4:4 + n_vocab] = np.clip(q, 0, 65535).astype(np.uint16)
    return out


def base_log_probs(rows: np.ndarray, n_vocab: int) -> np.ndarray:
    """Base-file rows back to float32 log-probabilities (min + scale * q)."""
    head = np.ascontiguousarray(rows[:, :4]).view(np.float32)
    return head[:, 1:2] + head[:, 0:1] * rows[:, 4:4 + n_vocab].astype(np.float32)


@dataclass
class BaseFile:
    """A base file's header; chunk rows are read on demand."""

    path: Path
    n_ctx: int
    n_vocab: int
    n_chunk: int
    tokens: np.ndarray  # int32, n_chunk * n_ctx

    @property
    def data_offset(self) -> int:
        return 8 + 12 + 4 * self.n_chunk * self.n_ctx

    def chunk_rows(self, i: int) -> np.ndarray:
        k, nv = scored_per_chunk(self.n_ctx), row_width(self.n_vocab)
        return np.fromfile(self.path, dtype=np.uint16, count=k * nv,
                           offset=self.data_offset + i * k * nv * 2).reshape(k, nv)


def read_base(path: Path) -> BaseFile:
    with open(path, "rb") as f:
        if f.read(8) != MAGIC:
            raise BackendError(f"{path} is not a file of base log-probabilities (llama.cpp's _logits_ format)")
        n_ctx, n_vocab, n_chunk = (int(v) for v in np.frombuffer(f.read(12), dtype=np.int32))
        tokens = np.frombuffer(f.read(4 * n_ctx * n_chunk), dtype=np.int32)
    expect = 20 + 4 * n_ctx * n_chunk + n_chunk * scored_per_chunk(n_ctx) * row_width(n_vocab) * 2
    if len(tokens) != n_ctx * n_chunk or path.stat().st_size != expect:
        raise BackendError(f"{path} is truncated ({path.stat().st_size} bytes, expected {expect}): delete it and "
                           "run the base workload's kld test again")
    return BaseFile(path, n_ctx, n_vocab, n_chunk, tokens)


def write_base(path: Path, n_ctx: int, n_vocab: int, tokens: np.ndarray, chunk_logits) -> None:
    """Write a base file from an iterable of per-chunk logits (scored positions only), to a temporary name first:
    an interrupted write never leaves a file that looks complete."""
    n_chunk = len(tokens) // n_ctx
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(np.array([n_ctx, n_vocab, n_chunk], dtype=np.int32).tobytes())
            f.write(np.asarray(tokens, dtype=np.int32).tobytes())
            for logits in chunk_logits:
                f.write(quantize_base(logits).tobytes())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Scores:
    """Running sums over scored positions (PPL) and, against a base, per-position KLD and top-token agreement."""

    nll_sum: float = 0.0
    count: int = 0
    kld: list[np.ndarray] = field(default_factory=list)
    same_top: int = 0

    def add_ppl(self, logits: np.ndarray, next_tokens: np.ndarray) -> None:
        v = nll(logits, next_tokens)
        self.nll_sum += float(v.sum())
        self.count += len(v)

    def add_kld(self, logits: np.ndarray, next_tokens: np.ndarray, base_rows: np.ndarray, n_vocab: int) -> None:
        lp = log_softmax(logits[:, :n_vocab])
        self.nll_sum += float(-lp[np.arange(len(next_tokens)), next_tokens].sum())
        self.count += len(next_tokens)
        lb = base_log_probs(base_rows, n_vocab).astype(np.float64)
        p = np.where(lb > -LOG_RANGE, np.exp(lb), 0.0)
        self.kld.append((p * (lb - lp)).sum(axis=1))
        self.same_top += int((lp.argmax(axis=1) == lb.argmax(axis=1)).sum())

    def metrics(self) -> dict:
        out = {"ppl": float(np.exp(self.nll_sum / self.count)) if self.count else None, "scored_tokens": self.count}
        if self.kld:
            k = np.concatenate(self.kld)
            out.update(kld_mean=float(k.mean()), kld_p99=float(np.percentile(k, 99)),
                       same_top_p=self.same_top / len(k))
        return out
