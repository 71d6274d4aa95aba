"""A second stage for the wake-word detector: Whisper checks what the small model heard.

The streaming model scores every 80 ms and must stay tiny; its worst false accepts are the rare
windows of ordinary speech that look like the phrase to 40 log-mel bands. A large model trained
on real speech tells those apart, and it only has to run when the small one is already fairly
sure. The :class:`WhisperVerifier` takes the last ``window_s`` seconds of audio at such a hop,
encodes them once with one of the engine's Whisper models (CTranslate2, int8 on CPU, offline)
and reads the decoder's probabilities of the phrase's own tokens, teacher-forced (CTranslate2's
``align``), for a few spellings of the phrase ("hey jarvis", "Hey Jarvis", "Hey, Jarvis"). The
score is the best spelling's geometric mean of its tokens' probabilities: how readily Whisper
would write exactly the phrase for this audio.

The detector (:class:`~emotivoice.wakeword.detector.WakeWordDetector` with ``verifier=``) asks
the verifier at each hop whose first-stage score reaches the verifier's ``gate``, at most
``max_checks`` times in a row of such hops, and reports a detection only where the verifier's
score reaches its ``threshold``; the detection's score is then the verifier's. Every input is a
window of the stream at an absolute position, so detections still do not depend on the size of
the chunks the audio arrives in.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError

__all__ = [
    "DEFAULT_VERIFIER",
    "VERIFIER_MODES",
    "VerifierOptions",
    "WhisperVerifier",
    "load_verifier",
    "log_score",
]

logger = logging.getLogger(__name__)

_PAD_FRAMES = 100  # Whisper mel frames (10 ms) of silence after the window: it ends sentences
_MEL_FRAMES_PER_S = 100
_MEL_HOP = SAMPLE_RATE // _MEL_FRAMES_PER_S
VERIFIER_MODES = ("rescue", "confirm")
_LOG_DECADES = 4.0  # log_score: probabilities from 1e-4 to 1


@dataclass(frozen=True)
class VerifierOptions:
    """The second stage's settings.

    Attributes:
        whisper_model: the engine's Whisper model that checks (``tiny.en``, ``base``, a
            CTranslate2 folder); loaded once per process, int8 on CPU.
        mode: ``rescue``: the first stage still detects on its own at its threshold, and
            the verifier is asked where it is unsure (a score from ``gate`` up to its
            threshold), so the verifier can add detections the small model would miss;
            ``confirm``: every detection must pass the verifier, asked from ``gate`` on.
        gate: the first-stage score at which the verifier is asked.
        threshold: the verifier's score (0-1, :func:`log_score`) at which it accepts.
        window_s: seconds of audio before the hop that Whisper hears.
        max_checks: verifications at most per run of consecutive hops at or over ``gate``
            (the cost's bound while someone talks).
        language: the phrase's language, for a multilingual Whisper model.
        threads: CTranslate2 threads.
    """

    whisper_model: str = "base"
    mode: str = "confirm"
    gate: float = 0.1
    threshold: float = 0.37
    window_s: float = 2.0
    max_checks: int = 8
    language: str = "en"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.mode not in VERIFIER_MODES:
            raise InvalidConfigError(
                f"the verifier's mode must be one of {VERIFIER_MODES}, got {self.mode!r}."
            )
        if not 0.0 < self.gate < 1.0 or not 0.0 < self.threshold < 1.0:
            raise InvalidConfigError("the verifier's gate and threshold must lie in (0, 1).")
        if not 0.5 <= self.window_s <= 10.0 or self.max_checks < 1 or self.threads < 1:
            raise InvalidConfigError(
                "the verifier's window_s must lie in 0.5-10 s; max_checks and threads >= 1."
            )

    @property
    def window_samples(self) -> int:
        """Samples of audio the verifier hears."""
        return round(self.window_s * SAMPLE_RATE)


#: the settings the figures chose (docs/wakeword.md, "Second stage")
DEFAULT_VERIFIER = VerifierOptions()


def log_score(probability: float) -> float:
    """A phrase probability on a log scale in [0, 1]: 0 at 1e-4 and under, 0.5 at 1e-2, 1 at
    1. Whisper gives ordinary speech a phrase probability of 1e-3 and less, and a synthetic voice
    over babble saying the phrase often only 1e-2: the log scale spreads the thresholds where
    they matter."""
    return float(np.clip(1.0 + np.log10(max(probability, 1e-12)) / _LOG_DECADES, 0.0, 1.0))


def _spellings(phrase: str) -> list[str]:
    """A few ways Whisper may write the phrase: lower case, title case, a comma after the first
    word (a greeting), each with Whisper's leading space."""
    words = phrase.split()
    title = [w.capitalize() for w in words]
    out = [" " + " ".join(words), " " + " ".join(title)]
    if len(words) > 1:
        out.append(" " + title[0] + ", " + " ".join(title[1:]))
    return list(dict.fromkeys(out))


class WhisperVerifier:
    """Scores audio windows by how readily Whisper writes the phrase for them.

    Thread-safe: one verifier (and its Whisper model) serves every stream of a process.

    Args:
        phrase: the wake phrase.
        options: the settings (default :data:`DEFAULT_VERIFIER`).
    """

    def __init__(self, phrase: str, options: VerifierOptions | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer

        from emotivoice.models.whisper import load_model

        self.phrase = phrase
        self.options = options or DEFAULT_VERIFIER
        self._whisper = load_model(self.options.whisper_model, "cpu", "int8", self.options.threads)
        multilingual = bool(self._whisper.model.is_multilingual)
        tokenizer = Tokenizer(
            self._whisper.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=self.options.language if multilingual else "en",
        )
        self._start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._tokens = [tokenizer.encode(s) for s in _spellings(phrase)]
        self._frames = int(self.options.window_s * _MEL_FRAMES_PER_S) + _PAD_FRAMES
        # CTranslate2 serves one call at a time per worker anyway; the lock keeps one window's
        # encoding and alignment together when several streams verify at once
        self._lock = threading.Lock()

    def features(self, window: np.ndarray) -> tuple[np.ndarray, int]:
        """Whisper log-mel ``(80, frames)`` of the last ``window_s`` of ``window``, padded with
        silence, and the number of frames that hold audio."""
        audio = np.asarray(window, np.float32).reshape(-1)[-self.options.window_samples :]
        n = len(audio) // _MEL_HOP
        # silence after the audio, as Whisper's own padding gives it (its log-mel floor)
        padded = np.concatenate([audio, np.zeros(self._frames * _MEL_HOP - len(audio), np.float32)])
        mel = self._whisper.feature_extractor(padded)[:, : self._frames]
        out = np.zeros((mel.shape[0], self._frames), np.float32)
        out[:, : mel.shape[1]] = mel
        return out, n

    def token_probabilities(self, window: np.ndarray) -> list[np.ndarray]:
        """Each spelling's teacher-forced token probabilities for ``window``."""
        import ctranslate2

        mel, n = self.features(window)
        model: Any = self._whisper.model
        with self._lock:
            encoded = model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True)
            states = np.repeat(np.asarray(encoded), len(self._tokens), axis=0)
            results = model.align(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(states)),
                self._start,
                self._tokens,
                [max(n, 2)] * len(self._tokens),
            )
        return [np.asarray(r.text_token_probs, np.float64) for r in results]

    def score(self, window: np.ndarray) -> float:
        """The verifier's score of ``window`` (16 kHz mono; its last ``window_s`` are heard):
        :func:`log_score` of the best spelling's geometric mean of its tokens' probabilities."""
        return log_score(self.phrase_probability(window))

    def phrase_probability(self, window: np.ndarray) -> float:
        """The best spelling's geometric mean of its tokens' probabilities (0-1)."""
        best = 0.0
        for probs in self.token_probabilities(window):
            if probs.size:
                best = max(best, float(np.exp(np.mean(np.log(np.maximum(probs, 1e-12))))))
        return best

    def score_batch(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`score` of each window."""
        return np.array([self.score(w) for w in windows], np.float32)


@functools.cache
def _cached(phrase: str, options: VerifierOptions) -> WhisperVerifier:
    return WhisperVerifier(phrase, options)


def load_verifier(phrase: str, options: VerifierOptions | None = None) -> WhisperVerifier:
    """The verifier of ``phrase`` with ``options``, made once per process and shared."""
    return _cached(phrase, options or DEFAULT_VERIFIER)
