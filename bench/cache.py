"""Where shadowbench keeps what it builds or derives once per box (llama.cpp's tools, reference audio, synthetic
image models, model hashes, downloaded prices): ``$XDG_CACHE_HOME/shadowbench``, by default
``~/.cache/shadowbench``."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).joinpath("shadowbench", *parts)
