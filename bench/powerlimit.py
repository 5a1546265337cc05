"""GPU power limits for a sweep: read the card's constraints, set a limit through NVML, and always put the original
back: after the sweep, after a failed workload, on Ctrl-C and SIGTERM (the runner's ``finally``), and after a crash
or SIGKILL through a record written *before* the first change (``~/.cache/shadowbench/power-limit.json``) that the
next ``shadowbench run`` or ``shadowbench restore-power-limit`` finds and undoes.

Setting a limit needs root. Without it NVML answers NVML_ERROR_NO_PERMISSION; the sweep then stops before it
measures anything and says the exact command (``sudo nvidia-smi -i N -pl W``, or run the sweep as root).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone

from .cache import cache_dir
from .energy.nvml import NVML, _text
from .errors import ShadowbenchError

NVML_ERROR_NO_PERMISSION = 4


class PowerLimitError(ShadowbenchError):
    exit_status = 2


@dataclass
class Card:
    index: int
    uuid: str
    name: str
    handle: object
    min_w: float
    max_w: float
    default_w: float
    current_w: float


def record_path():
    return cache_dir("power-limit.json")


def cards(session: NVML) -> list[Card]:
    nv = session.nv
    out = []
    for i, h in enumerate(session.handles):
        lo, hi = nv.nvmlDeviceGetPowerManagementLimitConstraints(h)
        out.append(Card(i, _text(nv.nvmlDeviceGetUUID(h)), _text(nv.nvmlDeviceGetName(h)), h,
                        lo / 1000, hi / 1000, nv.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000,
                        nv.nvmlDeviceGetPowerManagementLimit(h) / 1000))
    return out


def resolve(limit_w: list[float] | None, limit_pct: list[float] | None, card: Card) -> list[float]:
    """The sweep's limits in watts for a card (percentages of its default limit), each within its constraints."""
    watts = list(limit_w or []) + [card.default_w * p / 100 for p in (limit_pct or [])]
    for w in watts:
        if not card.min_w <= w <= card.max_w:
            raise PowerLimitError(f"a power limit of {w:g} W is outside what {card.name} (GPU {card.index}) accepts: "
                                  f"{card.min_w:g}–{card.max_w:g} W")
    return watts


def _write_record(session: NVML, cs: list[Card]) -> bool:
    """Record every card's limit before the first change; False when a record is there already (its originals are
    the ones to keep)."""
    path = record_path()
    if path.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "cards": {c.uuid: {"index": c.index, "name": c.name, "limit_w": c.current_w}
                                         for c in cs}}))
    tmp.replace(path)
    return True


def set_limit(session: NVML, card: Card, watts: float, all_cards: list[Card]) -> None:
    """Set a card's limit, having recorded every card's original first."""
    fresh = _write_record(session, all_cards)
    nv = session.nv
    try:
        nv.nvmlDeviceSetPowerManagementLimit(card.handle, int(round(watts * 1000)))
    except nv.NVMLError as e:
        if fresh:  # nothing was changed: nothing to put back
            record_path().unlink(missing_ok=True)
        if getattr(e, "value", None) == NVML_ERROR_NO_PERMISSION:
            raise PowerLimitError(
                f"setting the power limit of {card.name} (GPU {card.index}) needs root: run the sweep as root "
                f"(sudo), or set each limit yourself with `sudo nvidia-smi -i {card.index} -pl {watts:g}`; "
                "nothing was measured") from None
        raise PowerLimitError(f"NVML refused a power limit of {watts:g} W on GPU {card.index}: {e}") from None


def restore(session: NVML) -> list[str]:
    """Put every recorded card back to its original limit and remove the record; what was done, in words."""
    path = record_path()
    if not path.is_file():
        return []
    try:
        rec = json.loads(path.read_text())["cards"]
    except (OSError, ValueError, KeyError) as e:
        return [f"power-limit record {path} is unreadable ({e}); check the limits with nvidia-smi -q -d POWER"]
    nv = session.nv
    said, failed = [], False
    by_uuid = {c.uuid: c for c in cards(session)}
    for uuid, r in rec.items():
        c = by_uuid.get(uuid)
        if c is None:
            said.append(f"GPU {r.get('name')} ({uuid}) of the record is not visible now: its limit was not restored")
            failed = True
            continue
        try:
            nv.nvmlDeviceSetPowerManagementLimit(c.handle, int(round(r["limit_w"] * 1000)))
            said.append(f"restored the power limit of {c.name} (GPU {c.index}) to {r['limit_w']:g} W")
        except nv.NVMLError as e:
            failed = True
            said.append(f"could not restore GPU {c.index} to {r['limit_w']:g} W ({e}): run "
                        f"`sudo nvidia-smi -i {c.index} -pl {r['limit_w']:g}`")
    if not failed:
        path.unlink(missing_ok=True)
    return said


def restore_pending(pynvml_module=None) -> list[str]:
    """At the start of a run: undo a sweep that a crash or SIGKILL left behind (nothing when there is no record)."""
    if not record_path().is_file():
        return []
    from .errors import DeviceUnavailable

    try:
        session = NVML.open(pynvml_module)
    except DeviceUnavailable as e:
        return [f"a power-limit record {record_path()} is left from an interrupted sweep, but NVML is not available "
                f"({e})"]
    try:
        return restore(session)
    finally:
        session.close()
