"""Speech inputs: the reference set (fixed texts of the kind the cost guides price, synthesized once with Piper and
cached as WAV + TXT), or a user folder of ``name.wav`` + ``name.txt``; and word error rate.

The reference texts are plain words (no digits or abbreviations) so that a correct transcript matches them after
the usual normalization (lower case, no punctuation).
"""
from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import cache_dir
from .errors import BackendError

REFERENCE_TEXTS = {
    "email-vendor-review": (
        "Hi Dana, thanks for sending the notes from Tuesday. Before the steering call on Friday I want to make sure "
        "we agree on three points. First, the transcription backlog. Second, the support inbox. Third, the budget "
        "for the pilot, which finance approved only if we can show the monthly cost."),
    "email-usage-numbers": (
        "Could you pull together the usage numbers for the last three months, split by task type, and send them to "
        "me and Priya by Thursday noon? I will draft the summary for the steering group and circulate it before the "
        "call. Best regards, Marco."),
    "meeting-actions": (
        "Action items from the platform sync. Lee benchmarks the local model on the spare workstation and reports "
        "tokens per second and power draw under a realistic load. Priya checks whether the privacy review allows "
        "sending interview transcripts to an outside service."),
    "meeting-vendors": (
        "Dana compares three transcription vendors on price per audio minute and on accuracy with our own "
        "recordings. Marco writes the routing rules: simple extraction and classification stay local, long reports "
        "and agent tasks go to the hosted model."),
    "meeting-questions": (
        "Open questions. Who maintains the box, what happens when it is down, and whether the numbers hold when "
        "twenty people use it at once. The next meeting is in two weeks, at the same time, in the small room on "
        "the second floor."),
    "support-ticket": (
        "Hello, I was charged twice for my subscription this month and now I cannot log in to my account. I tried "
        "to reset my password but the email never arrived. Please refund the second charge and help me get back "
        "into my account as soon as possible."),
}


@dataclass(frozen=True)
class Clip:
    name: str
    wav: Path
    text: str
    audio_s: float


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the sample rate of a PCM WAV file; BackendError naming the file otherwise."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise BackendError(f"{path}: empty file, expected a WAV audio file")
    try:
        with wave.open(str(path), "rb") as w:
            sr, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise BackendError(f"{path}: not a WAV audio file ({e})") from e
    if n == 0:
        raise BackendError(f"{path}: WAV file holds no audio")
    if width != 2:
        raise BackendError(f"{path}: expected 16-bit PCM WAV, got {8 * width}-bit")
    a = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if ch > 1:
        a = a.reshape(-1, ch).mean(axis=1)
    return a, sr


def write_wav(path: Path, audio_int16: np.ndarray, sr: int) -> None:
    tmp = Path(path).with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.asarray(audio_int16, dtype="<i2").tobytes())
    tmp.replace(path)


def folder_clips(folder: Path) -> list[Clip]:
    """``name.wav`` + ``name.txt`` pairs; a clear BackendError naming the file for anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BackendError(f"{folder}: not a folder of name.wav + name.txt files")
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise BackendError(f"{folder}: no .wav files")
    clips = []
    for wav in wavs:
        txt = wav.with_suffix(".txt")
        if not txt.exists():
            raise BackendError(f"{wav}: missing transcript {txt.name}")
        a, sr = read_wav(wav)
        text = txt.read_text(encoding="utf-8").strip()
        if not text:
            raise BackendError(f"{txt}: empty transcript")
        clips.append(Clip(wav.stem, wav, text, len(a) / sr))
    return clips


def reference_clips(voice_path: Path, synthesize) -> list[Clip]:
    """The reference texts as audio, synthesized once per voice (``synthesize(text) -> (int16 array, rate)``) and
    cached under ~/.cache/shadowbench/speech/<voice hash>/."""
    key = hashlib.sha256(Path(voice_path).read_bytes()).hexdigest()[:12]
    folder = cache_dir("speech") / key
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in REFERENCE_TEXTS.items():
        wav, txt = folder / f"{name}.wav", folder / f"{name}.txt"
        if not (wav.exists() and txt.exists() and txt.read_text() == text):
            audio, sr = synthesize(text)
            write_wav(wav, audio, sr)
            txt.write_text(text)
    return [c for c in folder_clips(folder) if c.name in REFERENCE_TEXTS]


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over all clips, after lower-casing and removing punctuation."""
    import jiwer

    tf = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                        jiwer.ReduceToListOfListOfWords()])
    return float(jiwer.wer(references, hypotheses, reference_transform=tf, hypothesis_transform=tf))


def piper_voice(path: Path, use_cuda: bool = False):
    from piper import PiperVoice

    try:
        return PiperVoice.load(str(path), use_cuda=use_cuda)
    except Exception as e:  # noqa: BLE001 - onnxruntime and json errors vary
        raise BackendError(f"{path}: could not load the Piper voice ({e})") from e


def piper_synthesize(voice, text: str) -> tuple[np.ndarray, int]:
    chunks = list(voice.synthesize(text))
    return np.concatenate([c.audio_int16_array for c in chunks]), chunks[0].sample_rate
