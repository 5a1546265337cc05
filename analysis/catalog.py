"""Dated price and hardware catalogs: LLM token prices from genai-prices (bundled snapshot), everything else from
analysis/data/*.toml with a source and a date per entry. Unknown names get the close matches."""
from __future__ import annotations

import difflib
import tomllib
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from bench.errors import ConfigError

DATA = Path(__file__).parent / "data"


class UnknownName(ConfigError):
    """An API model or build name that is not in the catalog; lists the close matches."""

    def __init__(self, what: str, name: str, known: list[str], file="<catalog>"):
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        super().__init__(file, what, f"a known {what}{hint}", name)


@dataclass(frozen=True)
class LLMPrice:
    id: str
    usd_per_mtok_in: float
    usd_per_mtok_out: float
    source: str
    as_of: str
    provider: str = ""
    usd_per_mtok_cache_read: float | None = None
    batch_in: float | None = None
    batch_out: float | None = None
    genai_ref: str = ""  # the genai-prices model id: requests are priced by its own calculation (tiers included)

    def request_usd(self, prompt_tokens: float, output_tokens: float) -> float:
        """Token-weighted: input tokens at the input price, output tokens at the output price; a genai-prices
        model is priced by the library for this exact request, so a long prompt lands in its price tier."""
        if self.genai_ref:
            return _genai_request_usd(self.genai_ref, round(prompt_tokens), round(output_tokens))
        return (prompt_tokens * self.usd_per_mtok_in + output_tokens * self.usd_per_mtok_out) / 1e6


    def token_prices(self) -> dict:
        """Input and output prices per 1M tokens as {"base": $, "tiers": [[above this many input tokens, $], ...]}:
        genai-prices' own tiers ("cliff" pricing: past a threshold of input tokens the whole request pays the tier
        rate), so a page can price any request as ``request_usd`` does."""
        if not self.genai_ref:
            return {"in": {"base": self.usd_per_mtok_in, "tiers": []},
                    "out": {"base": self.usd_per_mtok_out, "tiers": []}}
        from genai_prices import Usage, calc_price

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mp = calc_price(Usage(input_tokens=1, output_tokens=1), self.genai_ref).model_price

        def one(v) -> dict:
            if v is None:
                return {"base": 0.0, "tiers": []}
            return {"base": float(getattr(v, "base", v)),
                    "tiers": [[int(t.start), float(t.price)] for t in getattr(v, "tiers", [])]}
        return {"in": one(mp.input_mtok), "out": one(mp.output_mtok)}


@lru_cache(maxsize=4096)
def _genai_request_usd(model_ref: str, prompt_tokens: int, output_tokens: int) -> float:
    from genai_prices import Usage, calc_price

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(calc_price(Usage(input_tokens=prompt_tokens, output_tokens=output_tokens), model_ref).total_price)


@dataclass(frozen=True)
class UnitPrice:
    kind: str  # stt | tts | image
    id: str
    usd_per_unit: float  # per audio minute, per character, per image
    unit: str
    source: str
    as_of: str
    provider: str = ""
    note: str = ""


@dataclass(frozen=True)
class Build:
    id: str
    label: str
    hardware_usd: float | None
    busy_wall_w: float
    idle_wall_w: float | None
    platform_busy_w: float
    psu_efficiency: float
    hours_per_day: float
    lifetime_years: float
    source: str
    guide_power_usd_per_month: float | None = None
    guide_power_basis: str = ""
    gpu_memory_gb: float | None = None
    components: tuple = ()
    anchor_llm: dict = field(default_factory=dict)
    anchor_image: dict = field(default_factory=dict)
    anchor_stt: dict = field(default_factory=dict)
    anchor_tts: dict = field(default_factory=dict)
    device_idle_w: float | None = None  # the GPU's own idle draw: all a box that is on anyway adds


PRICE_DATA_ENV = "SHADOWBENCH_PRICE_DATA"  # a genai-prices data file from `shadowbench prices --update`


def genai_prices_version() -> str:
    """What LLM prices come from, as every output names it: the package's bundled snapshot (its version), or a
    price-data file fetched by `shadowbench prices --update` (its name and date)."""
    f = _price_data_file()
    if f is not None:
        return f"data file {f.name}"
    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "not installed"


@lru_cache(maxsize=1)
def _price_data_file() -> Path | None:
    """The price-data file named by SHADOWBENCH_PRICE_DATA, loaded into genai-prices in place of its bundled
    snapshot; None (the default) keeps the snapshot."""
    import json
    import os

    name = os.environ.get(PRICE_DATA_ENV)
    if not name:
        return None
    path = Path(name).expanduser()
    try:
        providers = parse_price_data(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise ConfigError(path, PRICE_DATA_ENV, "a genai-prices data file (from `shadowbench prices --update`)",
                          f"<{type(e).__name__}: {str(e).splitlines()[0]}>") from None
    from genai_prices import data_snapshot

    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers, from_auto_update=True))
    return path


def parse_price_data(raw) -> list:
    """genai-prices' own parser for its published data (the format `--update` downloads)."""
    from genai_prices.types import _providers_from_raw  # the library's loader for fetched data

    if not isinstance(raw, list):
        raise ValueError("expected a list of providers")
    return _providers_from_raw(raw)


def update_price_data(url: str, dest_dir: Path, timeout_s: float = 20.0) -> tuple[Path, int]:
    """Download genai-prices' current data, check it parses, save it as genai-prices-<UTC date>.json; (file,
    providers). Network errors become one ShadowbenchError line."""
    import json
    from datetime import datetime, timezone

    import httpx

    from bench.errors import ShadowbenchError

    try:
        r = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        r.raise_for_status()
        raw = json.loads(r.content)
        providers = parse_price_data(raw)
    except httpx.HTTPError as e:
        raise ShadowbenchError(f"could not download price data from {url} ({type(e).__name__}); the bundled "
                               "snapshot stays in use") from None
    except ValueError as e:
        raise ShadowbenchError(f"{url} did not answer with genai-prices data ({str(e).splitlines()[0]})") from None
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"genai-prices-{datetime.now(timezone.utc):%Y-%m-%d}.json"
    out.write_text(json.dumps(raw), encoding="utf-8")
    return out, len(providers)


@lru_cache(maxsize=1)
def _prices_toml() -> dict:
    return tomllib.loads((DATA / "prices.toml").read_text())


@lru_cache(maxsize=1)
def _builds_toml() -> dict:
    return tomllib.loads((DATA / "builds.toml").read_text())


# the LLM models `shadowbench prices` lists from genai-prices (any id genai-prices knows can be asked for)
LISTED_LLMS = ["claude-3-5-haiku", "claude-haiku-4-5", "claude-3-5-sonnet", "claude-sonnet-4-5", "claude-opus-4-5",
               "gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "gpt-5.2", "gemini-1.5-flash",
               "gemini-2.5-flash", "gemini-3-flash-preview", "gemini-3-pro-preview", "glm-4.7", "minimax-m2.1"]


def _base(v) -> float | None:
    """A per-1M-token price from genai-prices: plain, or the base rate of a tiered price (below the first tier,
    which is where requests of the sizes priced here fall)."""
    if v is None:
        return None
    return float(getattr(v, "base", v))


def _genai_llm(model_id: str) -> LLMPrice | None:
    from genai_prices import Usage, calc_price

    _price_data_file()  # a fetched data file, where the user named one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = calc_price(Usage(input_tokens=1000, output_tokens=1000), model_id)
        except LookupError:
            return None
        try:
            b = calc_price(Usage(input_tokens=1000, output_tokens=1000), model_id,
                           price_context={"processing": "batch"}).model_price
            batch = (_base(b.input_mtok), _base(b.output_mtok))
        except Exception:  # noqa: BLE001 - batch variants are optional
            batch = (None, None)
    mp = r.model_price
    std = (_base(mp.input_mtok), _base(mp.output_mtok))
    if batch == std:
        batch = (None, None)
    return LLMPrice(id=model_id, usd_per_mtok_in=std[0] or 0.0, usd_per_mtok_out=std[1] or 0.0,
                    provider=r.provider.name, source=f"genai-prices {genai_prices_version()} ({r.model.id})",
                    as_of=f"genai-prices {genai_prices_version()}"
                          + ("" if _price_data_file() else " data snapshot"),
                    usd_per_mtok_cache_read=_base(getattr(mp, "cache_read_mtok", None)),
                    batch_in=batch[0], batch_out=batch[1], genai_ref=model_id)


def guide_llms() -> dict[str, LLMPrice]:
    return {e["id"]: LLMPrice(id=e["id"], usd_per_mtok_in=e["usd_per_mtok_in"], usd_per_mtok_out=e["usd_per_mtok_out"],
                              source=e["source"], as_of=e["as_of"], provider="guide")
            for e in _prices_toml()["llm"]}


def llm_price(model_id: str) -> LLMPrice:
    """A guide row (``guide:...``) or any model genai-prices knows."""
    guides = guide_llms()
    if model_id in guides:
        return guides[model_id]
    p = _genai_llm(model_id)
    if p is None:
        raise UnknownName("API model", model_id, LISTED_LLMS + list(guides))
    return p


_UNITS = {"stt": ("usd_per_audio_minute", "audio minute", 1.0),
          "tts": ("usd_per_mchar", "character", 1e-6),
          "image": ("usd_per_image", "image", 1.0),
          "embed": ("usd_per_mtok", "token", 1e-6)}
UNIT_KINDS = tuple(_UNITS)  # price kinds priced per unit (every kind but llm's tokens)


def unit_prices(kind: str) -> dict[str, UnitPrice]:
    key, unit, scale = _UNITS[kind]
    return {e["id"]: UnitPrice(kind=kind, id=e["id"], usd_per_unit=e[key] * scale, unit=unit, source=e["source"],
                               as_of=e["as_of"], provider=e.get("provider", ""),
                               note=e.get("checked", "") + (f"; {e['batch_note']}" if "batch_note" in e else ""))
            for e in _prices_toml().get(kind, [])}


def unit_price(kind: str, price_id: str) -> UnitPrice:
    prices = unit_prices(kind)
    if price_id not in prices:
        raise UnknownName(f"{kind} price", price_id, list(prices))
    return prices[price_id]


@dataclass(frozen=True)
class Retirement:
    id: str
    status: str  # retired | deprecated
    date: str
    successor: str
    source: str

    def label(self) -> str:
        return f"{self.status} {self.date}, successor {self.successor}"


def retirements() -> dict[str, Retirement]:
    """Retired and deprecated models by id; a guide row (guide:X) is looked up by X and by its catalog_id."""
    return {e["id"]: Retirement(e["id"], e["status"], e["date"], e["successor"], e["source"])
            for e in _prices_toml().get("retired", [])}


def retirement(price_id: str) -> Retirement | None:
    r = retirements()
    if price_id in r:
        return r[price_id]
    raw = {e["id"]: e for kind in ("llm", *UNIT_KINDS) for e in _prices_toml().get(kind, [])}
    alias = raw.get(price_id, {}).get("catalog_id") or price_id.removeprefix("guide:")
    return r.get(alias)


STALE_AFTER_MONTHS = 6  # a dated price older than this is listed as stale by `shadowbench prices`


def stale(as_of: str, today=None) -> str:
    """'' for a price checked within STALE_AFTER_MONTHS of today, else why it is stale ("as of 2025-10: 14 months
    old, re-check its source"). ``as_of`` is "YYYY-MM" or "YYYY-MM-DD"."""
    import datetime as dt

    today = today or dt.date.today()
    try:
        y, m = (int(x) for x in as_of.split("-")[:2])
    except ValueError:
        return f"as of {as_of!r}: not a date, re-check its source"
    age = (today.year - y) * 12 + today.month - m
    return f"as of {as_of}: {age} months old, re-check its source" if age > STALE_AFTER_MONTHS else ""


def tariff_usd_per_kwh() -> float:
    return float(_builds_toml()["tariff"]["usd_per_kwh"])


def builds() -> dict[str, Build]:
    data = _builds_toml()
    d = data["defaults"]
    out = {}
    for b in data["build"]:
        out[b["id"]] = Build(
            id=b["id"], label=b["label"], hardware_usd=b.get("hardware_usd"), busy_wall_w=b.get("busy_wall_w", 0),
            idle_wall_w=b.get("idle_wall_w"), platform_busy_w=b.get("platform_busy_w", 0.0),
            psu_efficiency=b.get("psu_efficiency", d["psu_efficiency"]),
            hours_per_day=b.get("hours_per_day", d["hours_per_day"]),
            lifetime_years=b.get("lifetime_years", d["lifetime_years"]), source=b["source"],
            guide_power_usd_per_month=b.get("guide_power_usd_per_month"),
            guide_power_basis=b.get("guide_power_basis", ""), gpu_memory_gb=b.get("gpu_memory_gb"),
            components=tuple(tuple(c) for c in b.get("components", ())), anchor_llm=b.get("anchor_llm", {}),
            anchor_image=b.get("anchor_image", {}), anchor_stt=b.get("anchor_stt", {}),
            anchor_tts=b.get("anchor_tts", {}), device_idle_w=b.get("device_idle_w"))
    return out


def build(build_id: str) -> Build:
    all_builds = builds()
    if build_id not in all_builds:
        raise UnknownName("build", build_id, list(all_builds))
    return all_builds[build_id]


@lru_cache(maxsize=1)
def gpu_bandwidths() -> list[dict]:
    return tomllib.loads((DATA / "gpus.toml").read_text())["gpu"]


def gpu_bandwidth_gb_s(gpu_name: str) -> tuple[float, str] | None:
    """(GB/s, source) of the first card whose match is in the NVML name, or None."""
    for g in gpu_bandwidths():
        if g["match"].lower() in gpu_name.lower():
            return float(g["bandwidth_gb_s"]), g["source"]
    return None


def machine_builds() -> dict[str, str]:
    return dict(_builds_toml().get("machines", {}))
