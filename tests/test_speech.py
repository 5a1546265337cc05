"""Speech suites with the real bundled models: faster-whisper tiny.en and Piper en_US-joe-medium."""
import wave

import numpy as np
import pytest

from bench import speech
from bench.results import read_rows

from .conftest import run_cli

pytestmark = pytest.mark.slow  # end-to-end: real inference

SPEECH_SUITE = """
[suite]
name = "speech"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0

[[workloads]]
name = "asr"
kind = "asr"
model = "bundled:whisper-tiny.en"
audio = "{audio}"

[[workloads]]
name = "tts"
kind = "tts"
model = "bundled:piper-joe-medium"
"""


def _csv(folder):
    return next(p for p in folder.rglob("*.csv") if not p.name.endswith(".power.csv"))


def test_asr_and_tts_round_trip_on_the_reference_set(write_suite, tmp_path):
    r = run_cli("run", write_suite(SPEECH_SUITE.format(audio="reference")), "--results-dir", tmp_path / "res",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    asr, tts = read_rows(_csv(tmp_path / "res"))
    # ASR: the six reference texts synthesized once by Piper (at least 60 s in all), transcribed by tiny.en
    assert asr["backend"] == "faster-whisper" and asr["test"] == "transcribe"
    assert float(asr["audio_s"]) >= 60 and asr["clips"] == "6"
    assert float(asr["rtf"]) == pytest.approx(float(asr["wall_s"]) / float(asr["audio_s"]), rel=0.05)
    assert float(asr["audio_min_per_hour"]) == pytest.approx(60 / float(asr["rtf"]), rel=1e-3)
    assert (asr["device"], asr["compute_type"], asr["beam_size"]) == ("cpu", "int8", "5")
    assert float(asr["wer"]) < 0.15  # the round trip Piper -> Whisper
    # TTS: characters, audio, speed, time to first audio; the output transcribed after the window
    assert tts["backend"] == "piper" and int(tts["chars"]) == sum(len(t) for t in speech.REFERENCE_TEXTS.values())
    assert float(tts["audio_s"]) >= 60 and 0 < float(tts["rtf"]) < 1
    assert float(tts["chars_per_s"]) == pytest.approx(int(tts["chars"]) / float(tts["audio_s"]) / float(tts["rtf"]),
                                                      rel=0.05)
    assert 0 < float(tts["ttfa_s"]) < float(tts["wall_s"])
    assert float(tts["wer"]) < 0.15
    assert float(tts["energy_j"]) > 0 and float(asr["energy_j"]) > 0


def test_wer_counts_word_errors():
    assert speech.wer(["the cat sat"], ["The cat, sat."]) == 0.0
    assert speech.wer(["the cat sat on the mat"], ["the cat sat on a hat"]) == pytest.approx(2 / 6)


def _write_wav(path, seconds=1.0, sr=16000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.sin(np.arange(int(sr * seconds)) / 5) * 3000).astype("<i2").tobytes())


@pytest.mark.parametrize("problem, expected", [
    ("not_audio", "not a WAV audio file"),
    ("empty", "empty file"),
    ("no_transcript", "missing transcript"),
])
def test_bad_audio_folder_is_named_and_other_workloads_run(write_suite, tmp_path, problem, expected):
    folder = tmp_path / "clips"
    folder.mkdir()
    _write_wav(folder / "good.wav")
    (folder / "good.txt").write_text("hello")
    bad = folder / "bad.wav"
    if problem == "not_audio":
        bad.write_text("this is a text file, not audio")
        (folder / "bad.txt").write_text("hello")
    elif problem == "empty":
        bad.write_bytes(b"")
        (folder / "bad.txt").write_text("hello")
    else:
        _write_wav(bad)
    voice = 'model = "bundled:piper-joe-medium"'
    suite = write_suite(SPEECH_SUITE.format(audio=folder).replace(voice, voice + '\nroundtrip = false'))
    r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress")
    assert r.returncode == 1
    assert str(bad) in r.stderr and expected in r.stderr
    rows = read_rows(_csv(tmp_path / "res"))
    assert [x["workload"] for x in rows] == ["tts"]  # the other workload ran and its row is kept


def test_missing_audio_folder_is_a_config_error(write_suite, tmp_path):
    r = run_cli("validate", write_suite(SPEECH_SUITE.format(audio=tmp_path / "nope")))
    assert r.returncode == 2 and "workloads[0].audio" in r.stderr
