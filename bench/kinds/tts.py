"""Kind ``tts``: text-to-speech with Piper; one repetition synthesizes every reference text, with an optional
Whisper round trip after the window (word error rate)."""
from __future__ import annotations

from ..columns import Column as C
from .. import models
from . import Pricing
from .schema import FIT_KEYS, MODEL, bool_key, fixed_tests, str_key

NAME = "tts"
BACKEND = "bench.backends.tts"
parse_test, TESTS = fixed_tests("synthesize")

KEYS = {
    "model": MODEL,
    "tests": TESTS,
    "use_cuda": bool_key(default=False),
    "roundtrip": bool_key("true or false (transcribe the output and record the word error rate)", True),
    "roundtrip_model": str_key('the Whisper model for the round trip ("bundled:NAME" or a path)',
                               "bundled:whisper-tiny.en"),
    **FIT_KEYS,
}


def finish(w: dict, path, where: str, check_models: bool) -> None:
    w["roundtrip_model"] = models.check_ref(w["roundtrip_model"], path, f"{where}.roundtrip_model", check_models)


COLUMNS = [
    C("chars", "metric", int, "characters", "characters synthesized in one repetition"),
    C("chars_per_s", "metric", float, "characters/s", "characters / wall time", summary=True, spread=True,
      label="chars/s", headline=True, better="higher"),
    C("ttfa_s", "metric", float, "s", "time to first audio chunk, median over texts", summary=True),
]
SHARES = ("clips", "audio_s", "rtf", "wer")

PRICING = Pricing("tts", "character", lambda row: row["chars"], display_unit="1M characters", display_scale=1e6)
