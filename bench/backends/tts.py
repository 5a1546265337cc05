"""Text-to-speech backend: Piper (ONNX). One repetition synthesizes every reference text; Piper streams one chunk
per sentence, so the time to first audio is measured. With ``roundtrip`` the output is transcribed after the window
with Whisper and the word error rate recorded, so a broken voice or decoder is caught, not priced."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from .. import models, speech
from ..config import Workload
from .asr import transcribe, whisper_model


class PiperBackend:
    name = "piper"

    def __init__(self, workload: Workload, model_path: Path):
        self.workload, self.model_path = workload, Path(model_path)
        self.outputs: list[tuple[np.ndarray, int]] = []
        self.checker = None

    def load(self) -> None:
        p = self.workload.params
        self.voice = speech.piper_voice(self.model_path, use_cuda=p["use_cuda"])
        self.texts = list(speech.REFERENCE_TEXTS.values())
        if p["roundtrip"]:
            self.checker, _, _ = whisper_model(models.resolve(p["roundtrip_model"]), "cpu", "int8",
                                               self.workload.threads)

    def unload(self) -> None:
        self.voice = self.checker = None

    def settings(self) -> dict:
        return {"threads": self.workload.threads, "device": "cuda" if self.workload.params["use_cuda"] else "cpu"}

    def prepare(self, test: str) -> None:
        pass

    def run(self, test: str) -> dict:
        self.outputs = []
        first = []
        t0 = time.perf_counter()
        for text in self.texts:
            ts = time.perf_counter()
            chunks = []
            for c in self.voice.synthesize(text):
                if not chunks:
                    first.append(time.perf_counter() - ts)
                chunks.append(c)
            self.outputs.append((np.concatenate([c.audio_int16_array for c in chunks]), chunks[0].sample_rate))
        wall = time.perf_counter() - t0
        chars = sum(len(t) for t in self.texts)
        audio_s = sum(len(a) / sr for a, sr in self.outputs)
        return {"chars": chars, "audio_s": audio_s, "clips": len(self.texts), "rtf": wall / audio_s,
                "chars_per_s": chars / wall, "ttfa_s": statistics.median(first)}

    def check(self, test: str) -> dict:
        if self.checker is None:
            return {}
        hyps = []
        for audio, sr in self.outputs:
            x = audio.astype(np.float32) / 32768.0
            n16 = int(round(len(x) * 16000 / sr))  # linear resampling to Whisper's 16 kHz
            x16 = np.interp(np.linspace(0, len(x) - 1, n16), np.arange(len(x)), x).astype(np.float32)
            hyps.append(transcribe(self.checker, x16, 5, "en"))
        return {"wer": speech.wer(self.texts, hyps)}


def create(workload: Workload, model_path: Path) -> PiperBackend:
    return PiperBackend(workload, model_path)
