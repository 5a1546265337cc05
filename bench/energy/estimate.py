"""The labeled CPU estimate, used only when nothing is readable: process CPU time x watts per busy thread."""
from __future__ import annotations

import re
import time

from .base import Clock, Part, PartWindow, Scope

# Rated power (TDP / base power, W) and hardware threads of common desktop and workstation CPUs: the estimate
# charges TDP / threads watts per second of busy CPU time. Sources: the vendors' spec pages.
CPU_POWER = [
    (r"ryzen 9 7950x3?d?", 170, 32), (r"ryzen 9 7900x", 170, 24), (r"ryzen 7 7700x", 105, 16),
    (r"ryzen 5 7600x", 105, 12), (r"ryzen 9 5950x", 105, 32), (r"ryzen 9 5900x", 105, 24),
    (r"ryzen 7 5800x3d", 105, 16), (r"ryzen 7 5800x", 105, 16), (r"ryzen 5 5600x", 65, 12),
    (r"ryzen 5 5600g?", 65, 12), (r"ryzen 7 5700g", 65, 16), (r"core\S* i9-14900k", 125, 32),
    (r"core\S* i9-13900k", 125, 32), (r"core\S* i7-13700k", 125, 24), (r"core\S* i5-13600k", 125, 20),
    (r"core\S* i9-12900k", 125, 24), (r"core\S* i7-12700k?", 125, 20), (r"core\S* i5-12400", 65, 12),
    (r"core\S* i9-9900k", 95, 16), (r"core\S* i7-8700k?", 95, 12), (r"xeon\S* e5-2680 v4", 120, 28),
    (r"xeon\S* e5-2690 v4", 135, 28), (r"threadripper 3970x", 280, 64),
]
DEFAULT_W_PER_THREAD = 10.0
CHILD_SCAN_INTERVAL_S = 2.0  # scanning the process table is costly: at most this often


def cpu_watts_per_thread(cpu_model: str, override: float | None = None) -> tuple[float, str]:
    """(W per busy hardware thread, how it was chosen) for the labeled estimate."""
    if override is not None:
        return float(override), f"user setting cpu_w_per_core={override:g} W"
    for pattern, tdp, threads in CPU_POWER:
        if re.search(pattern, cpu_model, re.IGNORECASE):
            return tdp / threads, f"{cpu_model}: TDP {tdp} W / {threads} threads"
    return DEFAULT_W_PER_THREAD, (f"CPU {cpu_model!r} not in the TDP table: default {DEFAULT_W_PER_THREAD:g} W per "
                                  "busy thread; set [energy] cpu_w_per_core in the suite")


class EstimatePart(Part):
    """This process's (and its children's) CPU time x watts per busy thread. Rows say energy_source=estimated and
    carry the assumption in energy_note."""

    domain = "cpu"
    source = "estimated"

    def __init__(self, w_per_thread: float, basis: str, clock: Clock = time.perf_counter):
        import psutil

        super().__init__(clock)
        self.proc = psutil.Process()
        self.w_per_thread = w_per_thread
        self.basis = basis
        self._children: list = []
        self._children_at_s = -1e9
        self.scope = Scope()
        self._tracked: list = []

    def track(self, scope: Scope) -> None:
        """Count a local server's processes (and their children) too, or the whole machine's busy CPU time."""
        import psutil

        self.scope = scope
        self._tracked = []
        for pid in scope.pids:
            try:
                self._tracked.append(psutil.Process(pid))
            except psutil.Error:
                continue
        self._children_at_s = -1e9

    def cpu_seconds(self) -> float:
        """This process, its finished children, and its live child processes (a server the harness started); with
        a tracked local server, its processes too; with scope "system", the whole machine's busy CPU time."""
        import psutil

        if self.scope.kind == "system":
            t = psutil.cpu_times()
            return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))
        t = self.proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        now = time.monotonic()
        if now - self._children_at_s > CHILD_SCAN_INTERVAL_S:
            procs = self.proc.children(recursive=True)
            for p in self._tracked:
                try:
                    procs += [p, *p.children(recursive=True)]
                except psutil.Error:
                    continue
            # each process once: a tracked server may also be a child of this one
            self._children = list({p.pid: p for p in procs if p.pid != self.proc.pid}.values())
            self._children_at_s = now
        for child in self._children:
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                continue
        return total

    def counter_j(self) -> float | None:
        return self.cpu_seconds() * self.w_per_thread

    def window(self, counter_j, integrated_j, states, duration_s, t0=None, t1=None) -> PartWindow:
        note = self.describe() + (f"; {self.scope.note}" if self.scope.note else "")
        return PartWindow(counter_j, {"energy_note": note})

    def describe(self) -> str:
        return (f"estimate: process (and child processes) CPU time x {self.w_per_thread:.2f} W per busy thread "
                f"({self.basis})")
