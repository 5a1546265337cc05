"""Provenance: what machine, software and code produced a row (pytest-benchmark's machine_info/commit_info)."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import __version__

# packages whose versions change measurements; recorded when installed
PACKAGES = ["shadowbench", "llama-cpp-python", "numpy", "faster-whisper", "ctranslate2", "piper-tts",
            "onnxruntime", "diffusers", "torch", "transformers", "nvidia-ml-py", "httpx"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    """Installed memory in GiB (2^30 bytes), one decimal."""
    import psutil

    return round(psutil.virtual_memory().total / 2**30, 1)


def package_versions() -> str:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ";".join(out)


def git_info() -> tuple[str, str]:
    """(sha, dirty) of the shadowbench checkout; empty strings outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)

    try:
        sha = git("rev-parse", "HEAD")
        if sha.returncode != 0:
            return "", ""
        status = git("status", "--porcelain", "--untracked-files=no")
        return sha.stdout.strip(), "true" if status.stdout.strip() else "false"
    except (OSError, subprocess.TimeoutExpired):
        return "", ""


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu @.*|processor|\d+-core", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def machine_name(gpu_names: list[str] | None = None) -> str:
    """Stable on one box without any state: GPU (or 'cpu'), CPU model, logical cores, RAM.

    ``SHADOWBENCH_MACHINE`` or ``--machine`` override it.
    """
    env = os.environ.get("SHADOWBENCH_MACHINE")
    if env:
        return env
    lead = "-".join(_slug(g).replace("nvidia-geforce-", "").replace("nvidia-", "") for g in gpu_names or []) or "cpu"
    return f"{lead}-{_slug(cpu_model())}-{os.cpu_count()}c-{round(ram_gib())}g"


def collect(gpus: list[dict]) -> dict[str, str]:
    """Run-level provenance columns. ``gpus`` come from the GPU probe (bench.energy.nvml), empty where there is none."""
    sha, dirty = git_info()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "ram_gib": str(ram_gib()),
        "gpu_name": ";".join(g["name"] for g in gpus),
        "gpu_memory_gb": ";".join(f"{g['memory_total_gb']:.1f}" for g in gpus),
        "gpu_driver": gpus[0]["driver"] if gpus else "",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": package_versions(),
        "git_sha": sha,
        "git_dirty": dirty,
        "shadowbench_version": __version__,
    }
