"""The guides' big-model claims on the guides' cards: a 70B model's speed where it cannot sit in the card's memory,
Qwen Image's seconds per image, Flux Dev's download. For each build the guide prices with such a claim: the form
that fits (the split by layer of ``bench.fetch``), the bandwidth bound on decode speed that split allows (every
weight read once per token: the GPU's layers at the card's bandwidth, the rest at RAM's), and the measured rows
where a suite ran the model on such a card."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass

import pandas as pd

from bench import fetch

from . import catalog, rows


def data() -> dict:
    return tomllib.loads((catalog.DATA / "bigmodels.toml").read_text())


@dataclass(frozen=True)
class LLMClaim:
    build: str
    label: str
    guide_tok_s: float
    guide_source: str
    memory_gb: float
    split: fetch.Split
    bound_tok_s: float | None  # the bandwidth bound for the split (None: no bandwidth figure)
    bound_basis: str
    measured_tok_s: float | None
    measured_rows: str
    fits_ram: bool | None  # a unified-memory box: does the whole file fit its memory at all


def llm_claims(df: pd.DataFrame) -> list[LLMClaim]:
    d = data()
    m = d["llm"]
    size = int(m["file_gb"] * fetch.GB)
    out = []
    for b in catalog.builds().values():
        a = b.anchor_llm
        if a.get("model") != m["guide_model"] or not b.gpu_memory_gb:
            continue
        unified = "M2" in b.label or "Mac" in b.label
        s = fetch.estimated_split(size, m["arch"], m["n_ctx"], int(b.gpu_memory_gb * fetch.GB))
        bw = catalog.gpu_bandwidth_gb_s(b.label)
        bound, basis = None, "no bandwidth figure for this card in gpus.toml"
        fits = (size <= b.gpu_memory_gb * fetch.GB) if unified else None
        if fits is False:
            basis = "no bound: the file does not fit the memory"
        if bw is not None and fits is not False:
            kv = fetch.kv_layer_bytes(m["n_ctx"], m["arch"])
            gpu_w = (s.gpu_bytes - int(fetch.RUNTIME_OVERHEAD_GB * fetch.GB) - s.layers_on_gpu * kv
                     if s.layers_on_gpu else 0)  # weights only: the KV cache is not read whole per token
            ram_w = size - min(gpu_w, size)
            ram_bw = bw[0] if unified else d["ram_bandwidth_gb_s"]
            bound = 1 / (gpu_w / (bw[0] * fetch.GB) + ram_w / (ram_bw * fetch.GB))
            basis = (f"{bw[0]:g} GB/s ({bw[1]})" + ("" if unified else
                     f"; RAM {d['ram_bandwidth_gb_s']:g} GB/s ({d['ram_bandwidth_source']})"))
        meas = df[(df["kind"] == "llm") & df["workload"].str.contains(m["workload_contains"], case=False)
                  & df["tg_tokens_per_s"].notna()] if not df.empty and "tg_tokens_per_s" in df else df.iloc[0:0]
        out.append(LLMClaim(b.id, b.label, float(a["tg_tokens_per_s"]), a.get("source", ""), float(b.gpu_memory_gb),
                            s, bound, basis, float(meas["tg_tokens_per_s"].median()) if not meas.empty else None,
                            rows.provenance(meas) if not meas.empty else "", fits))
    return out


def image_claims(df: pd.DataFrame) -> list[dict]:
    m = data()["image"]
    meas = df[(df["kind"] == "image") & df["workload"].str.contains(m["workload_contains"], case=False)
              & df["weights"].eq("pretrained")] if not df.empty and "weights" in df else df.iloc[0:0]
    out = []
    for b in catalog.builds().values():
        a = b.anchor_image
        if a.get("model") != m["guide_model"]:
            continue
        out.append({"build": b.id, "label": b.label, "guide_s": float(a["s_per_image"]), "source": a.get("source", ""),
                    "measured_s": float(meas["s_per_image"].median()) if not meas.empty else None,
                    "rows": rows.provenance(meas) if not meas.empty else ""})
    return out


def flux_download() -> dict:
    f = data()["flux_download"]
    return {**f, "total_gb": sum(x[1] for x in f["files"]),
            "gguf_total_gb": f["gguf_q8_0_gb"] + sum(x[1] for x in f["files"][1:])}
