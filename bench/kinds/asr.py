"""Kind ``asr``: speech-to-text with faster-whisper; one repetition transcribes every clip of the input set."""
from __future__ import annotations

from pathlib import Path

from ..columns import Column as C
from ..errors import ConfigError
from .. import models
from . import Pricing
from .schema import DEVICE, FIT_KEYS, MODEL, fixed_tests, int_key, str_key

NAME = "asr"
BACKEND = "bench.backends.asr"
parse_test, TESTS = fixed_tests("transcribe")

KEYS = {
    "model": MODEL,
    "tests": TESTS,
    "audio": str_key('"reference" (the built-in texts synthesized once with Piper) or a folder of name.wav + '
                     'name.txt', "reference"),
    "reference_voice": str_key('the Piper voice for the reference audio ("bundled:NAME" or a path)',
                               "bundled:piper-joe-medium"),
    "device": DEVICE,
    "compute_type": str_key('"auto" (float16 on CUDA, int8 on CPU) or a CTranslate2 compute type', "auto"),
    "beam_size": int_key("an integer >= 1", 5, check=lambda v: v >= 1),
    "language": str_key("a language code", "en"),
    **FIT_KEYS,
}


def finish(w: dict, path, where: str, check_models: bool) -> None:
    if w["audio"] != "reference":
        folder = Path(w["audio"]).expanduser()
        folder = folder if folder.is_absolute() else (Path(path).parent / folder).resolve()
        if check_models and not folder.is_dir():
            raise ConfigError(path, f"{where}.audio", '"reference" or an existing folder of name.wav + name.txt',
                              w["audio"])
        w["audio"] = str(folder)
    w["reference_voice"] = models.check_ref(w["reference_voice"], path, f"{where}.reference_voice", check_models)


COLUMNS = [
    C("clips", "metric", int, "", "audio clips (asr) or texts (tts) in one repetition"),
    C("audio_s", "metric", float, "s", "seconds of audio transcribed (asr) or synthesized (tts)"),
    C("rtf", "metric", float, "", "real-time factor: wall time / audio time (lower is faster)", summary=True,
      spread=True, label="RTF (wall ÷ audio)", headline=True, better="lower"),
    C("audio_min_per_hour", "metric", float, "min/h", "audio minutes transcribed per wall-clock hour"),
    C("wer", "metric", float, "", "word error rate against the reference texts (tts: of the round trip), "
      "measured after the window", summary=True),
    C("compute_type", "settings", str, "", "CTranslate2 compute type (asr) or torch dtype (image)"),
    C("beam_size", "settings", int, "", "beam search width"),
]
SHARES: tuple[str, ...] = ()

PRICING = Pricing("stt", "audio minute", lambda row: row["audio_s"] / 60)
