"""Speech-to-text backend: faster-whisper (CTranslate2). One repetition transcribes every clip of the input set;
the lazy segment generator is consumed inside the measurement window. Audio is decoded to 16 kHz before the window
(API prices are per audio minute, whatever the container)."""
from __future__ import annotations

import time
from pathlib import Path

from .. import models, speech
from ..config import Workload
from ..errors import BackendError, OutOfMemory, is_out_of_memory


def whisper_model(path: Path, device: str, compute_type: str, threads: int):
    from .. import cudalibs

    cudalibs.preload_ct2()  # CUDA 12 cuBLAS from the environment's NVIDIA package, where one is installed
    import ctranslate2
    from faster_whisper import WhisperModel

    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    try:
        model = WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=threads)
    except (RuntimeError, ValueError, OSError) as e:
        raise BackendError(f"{path}: faster-whisper could not load the model ({e})") from e
    return model, device, compute_type


def transcribe(model, audio, beam_size: int, language: str) -> str:
    segments, _ = model.transcribe(audio, beam_size=beam_size, language=language)
    return " ".join(s.text.strip() for s in segments)  # consuming the generator does the work


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(self, workload: Workload, model_path: Path):
        self.workload, self.model_path = workload, Path(model_path)
        self.hypotheses: list[str] = []

    def load(self) -> None:
        from faster_whisper import decode_audio

        p = self.workload.params
        self.model, self.device, self.compute_type = whisper_model(self.model_path, p["device"], p["compute_type"],
                                                                   self.workload.threads)
        if p["audio"] == "reference":
            voice_path = models.resolve(p["reference_voice"])
            voice = speech.piper_voice(voice_path)
            self.clips = speech.reference_clips(voice_path, lambda text: speech.piper_synthesize(voice, text))
            self.input_label = "reference"
        else:
            self.clips = speech.folder_clips(Path(p["audio"]))
            self.input_label = p["audio"]
        self.audios = []
        for c in self.clips:
            try:
                self.audios.append(decode_audio(str(c.wav)))
            except Exception as e:  # noqa: BLE001 - PyAV raises many kinds
                raise BackendError(f"{c.wav}: could not decode audio ({e})") from e
        self.audio_s = sum(len(a) for a in self.audios) / 16000

    def unload(self) -> None:
        self.model = None

    def settings(self) -> dict:
        p = self.workload.params
        return {"threads": self.workload.threads, "device": self.device, "compute_type": self.compute_type,
                "beam_size": p["beam_size"], "backend_build": f"audio={self.input_label}"}

    def prepare(self, test: str) -> None:
        pass

    def run(self, test: str) -> dict:
        p = self.workload.params
        t0 = time.perf_counter()
        try:
            self.hypotheses = [transcribe(self.model, a, p["beam_size"], p["language"]) for a in self.audios]
        except RuntimeError as e:  # CTranslate2 reports CUDA failures as RuntimeError
            if is_out_of_memory(e):
                raise OutOfMemory(f"Whisper {self.model_path.name} ({self.compute_type}) on {self.device}", e) from e
            raise
        wall = time.perf_counter() - t0
        return {"audio_s": self.audio_s, "clips": len(self.audios), "rtf": wall / self.audio_s,
                "audio_min_per_hour": 60 * self.audio_s / wall}

    def check(self, test: str) -> dict:
        """After the window: word error rate of the transcripts against the reference texts."""
        return {"wer": speech.wer([c.text for c in self.clips], self.hypotheses)}


def create(workload: Workload, model_path: Path) -> FasterWhisperBackend:
    return FasterWhisperBackend(workload, model_path)
