"""GPU power limits for a sweep: read the card's constraints, set a limit through NVML, and always put the original
back: after the sweep, after a failed workload, on Ctrl-C and SIGTERM (the runner's ``finally``), and after a crash
or SIGKILL through a record written *before* the first change (``~/.cache/shadowbench/power-limit.json``) that the
next ``shadowbench run`` or ``shadowbench restore-power-limit`` finds and undoes.

The record names its owner (pid and the process's start time, so a reused pid is not taken for it): a run or
`restore-power-limit` restores only a record whose owner is gone; while the owner lives, a second sweep on the box is
refused (exit 2) and names it, and a plain run leaves the live sweep's limits alone.

Setting a limit needs root. Without it NVML answers NVML_ERROR_NO_PERMISSION; the sweep then stops before it
measures anything and says the exact command (``sudo nvidia-smi -i N -pl W``, or run the sweep as root).
"""
from __future__ import annotations

import json
import math
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


def _started(pid: int) -> float | None:
    """A process's start time (seconds since the epoch), None when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def read_record() -> dict:
    """The record as written, checked: an owner (pid, start time) and each card's original limit in watts (finite,
    > 0). PowerLimitError naming the file for anything else."""
    path = record_path()
    try:
        rec = json.loads(path.read_text())
        cards_ = rec["cards"]
        assert isinstance(cards_, dict) and cards_
        for r in cards_.values():
            w = float(r["limit_w"])
            assert math.isfinite(w) and w > 0
        int(rec["pid"])
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        why = type(e).__name__ + (f": {e}" if str(e) else "")
        raise PowerLimitError(f"power-limit record {path} is unreadable ({why}): check the limits with "
                              "`nvidia-smi -q -d POWER`, set them with `sudo nvidia-smi -i N "
                              "-pl W`, then delete the file") from None
    return rec


def owner(rec: dict) -> str | None:
    """'pid N (started ...)' while the process that wrote the record lives; None when it is gone."""
    pid = int(rec["pid"])
    started = _started(pid)
    if started is None or (rec.get("started") is not None and abs(started - float(rec["started"])) > 1.0):
        return None  # gone, or its pid reused by another process
    return f"pid {pid} (started {datetime.fromtimestamp(started, timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"


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
    """Record every card's limit before the first change; False when this process's record is there already (its
    originals are the ones to keep). A record of a live sweep in another process is refused (PowerLimitError); one
    whose owner is gone is taken over with its originals (they are the card's own, not the dead sweep's)."""
    path = record_path()
    originals = {c.uuid: {"index": c.index, "name": c.name, "limit_w": c.current_w} for c in cs}
    if path.is_file():
        rec = read_record()
        if int(rec["pid"]) == os.getpid():
            return False
        who = owner(rec)
        if who is not None:
            raise PowerLimitError(f"another power-limit sweep holds the GPU limits: {who} (record {path}); wait for "
                                  "it to end or stop it, then run this sweep; nothing was changed")
        originals = rec["cards"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "started": _started(os.getpid()),
                               "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cards": originals}))
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


def restore(session: NVML, mine: bool = False) -> list[str]:
    """Put every recorded card back to its original limit and remove the record; what was done, in words. With
    ``mine`` (the end of this process's sweep) only this process's record; otherwise only a record whose owner is gone
    (a live sweep's limits are left alone and said so). PowerLimitError for an unreadable record."""
    path = record_path()
    if not path.is_file():
        return []
    full = read_record()
    if mine and int(full["pid"]) != os.getpid():
        return []
    if not mine:
        who = owner(full)
        if who is not None:
            return [f"a power-limit sweep is running: {who} holds the GPU limits (record {path}); left alone"]
    rec = full["cards"]
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

    if owner(read_record()) is not None:
        return restore(None)  # a live sweep: said, left alone (no NVML needed)

    try:
        session = NVML.open(pynvml_module)
    except DeviceUnavailable as e:
        return [f"a power-limit record {record_path()} is left from an interrupted sweep, but NVML is not available "
                f"({e})"]
    try:
        return restore(session)
    finally:
        session.close()
