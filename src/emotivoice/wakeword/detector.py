"""Wake-word detection with numpy and onnxruntime: no PyTorch at inference.

A :class:`WakeWordModel` is loaded once per process and shared read-only (an onnxruntime
session may run from several threads); each stream owns a :class:`WakeWordDetector` that keeps
its own samples, frames and refractory clock. The detector scores the last 1.5 s every 80 ms at
absolute frame positions, so the detections of a stream do not depend on the size of the
chunks it arrives in.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError, ModelNotFoundError, WakeWordModelError
from emotivoice.wakeword.features import (
    FRAME_HOP,
    FRAME_LENGTH,
    HOP_FRAMES,
    N_MELS,
    WINDOW_FRAMES,
    log_mel,
    silence_frame,
)
from emotivoice.wakeword.metadata import FORMAT_VERSION, METADATA_KEY, front_end

if TYPE_CHECKING:
    from emotivoice.wakeword.verify import WhisperVerifier

__all__ = [
    "DEFAULT_REFRACTORY_S",
    "Detection",
    "VerifiedModel",
    "WakeWordDetector",
    "WakeWordModel",
    "available_models",
    "detections",
    "load_model",
    "score_samples",
]

logger = logging.getLogger(__name__)

DEFAULT_REFRACTORY_S = 2.0
_BATCH = 256
_STREAM_CHUNK_S = 30.0  # how score_streams feeds a recording: in live-sized pieces
_BUNDLED = {"hey_jarvis": "hey_jarvis.onnx"}
_ASK_ALWAYS = float(np.nextafter(1.0, 0.0))  # a first-stage threshold no score reaches


@dataclass(frozen=True)
class Detection:
    """The wake phrase was heard.

    Attributes:
        time_s: the stream time (seconds from its start) of the audio that completed it.
        score: the model's probability (with a verifier: the verifier's score).
        phrase: the wake phrase.
    """

    time_s: float
    score: float
    phrase: str


class WakeWordModel:
    """An EmotiVoice wake-word model (ONNX): load once, share between streams.

    Attributes:
        path: the ONNX file.
        phrase: the phrase it detects.
        threshold: the detection threshold chosen when it was trained.
        metadata: the model's whole metadata record.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelNotFoundError(
                f"No wake-word model at {self.path}; available models = {available_models()}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors for bad files
            raise WakeWordModelError(
                f"{self.path} is not a readable ONNX model (corrupt or truncated): {error}"
            ) from error
        self.metadata = self._check(self._session)
        self.phrase: str = self.metadata["phrase"]
        self.threshold: float = float(self.metadata["threshold"])

    def _check(self, session: Any) -> dict[str, Any]:
        props = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise WakeWordModelError(
                f"{self.path} is an ONNX model but not an EmotiVoice wake-word model (it has no "
                f"{METADATA_KEY!r} metadata); train one with `emotivoice wakeword train`."
            )
        try:
            record = json.loads(props[METADATA_KEY])
            version = int(record["format"])
            str(record["phrase"]), float(record["threshold"])
        except (ValueError, KeyError, TypeError) as error:
            raise WakeWordModelError(
                f"{self.path}: its wake-word metadata is unreadable."
            ) from error
        if version > FORMAT_VERSION or record.get("front_end") != front_end():
            raise WakeWordModelError(
                f"{self.path} was made for another front end or a newer EmotiVoice "
                f"(format {version}); this version reads format {FORMAT_VERSION}."
            )
        inputs = session.get_inputs()
        if [i.name for i in inputs] != ["mel"] or inputs[0].shape[1:] != [WINDOW_FRAMES, N_MELS]:
            raise WakeWordModelError(
                f"{self.path}: its input is not (batch, {WINDOW_FRAMES}, {N_MELS}) mel."
            )
        return dict(record)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,)`` of log-mel windows ``(n, WINDOW_FRAMES, N_MELS)``."""
        out = [
            self._session.run(None, {"mel": windows[i : i + _BATCH].astype(np.float32)})[0]
            for i in range(0, len(windows), _BATCH)
        ]
        return np.concatenate(out).reshape(-1) if out else np.zeros(0, np.float32)

    def detector(
        self,
        threshold: float | None = None,
        refractory_s: float = DEFAULT_REFRACTORY_S,
        verifier: WhisperVerifier | None = None,
    ) -> WakeWordDetector:
        """A new stream's detector on this model (``verifier``: a second stage, see
        :class:`WakeWordDetector`)."""
        return WakeWordDetector(self, threshold, refractory_s, verifier)

    def score_streams(
        self, streams: Sequence[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        """Each stream's ``(hop end times, scores)``, each fed to a fresh detector in 30 s
        chunks as a live stream is, and the CPU seconds the scoring took (the evaluation's
        :class:`~emotivoice.wakeword.evaluate.StreamScorer` protocol)."""
        started = time.process_time()
        out = [_scored_live(self.detector(threshold=0.5).scores, samples) for samples in streams]
        return out, time.process_time() - started


def available_models() -> list[str]:
    """Names of the models shipped in the package."""
    return sorted(_BUNDLED)


def _bundled_path(name: str) -> Path:
    return Path(str(resources.files("emotivoice.wakeword") / "weights" / _BUNDLED[name]))


@functools.cache
def _cached(path: str, threads: int) -> WakeWordModel:
    return WakeWordModel(Path(path), threads)


def load_model(name_or_path: str | Path = "hey_jarvis", threads: int = 1) -> WakeWordModel:
    """A shipped model by name (:func:`available_models`) or an ONNX file made by the studio.

    Loaded once per process and path; the same object is returned to every caller.

    Raises:
        ModelNotFoundError: neither a shipped name nor an existing file.
        WakeWordModelError: the file is corrupt or not an EmotiVoice wake-word model.
    """
    key = str(name_or_path)
    path = _bundled_path(key) if key in _BUNDLED else Path(key).expanduser().resolve()
    return _cached(str(path), threads)


def _windows_at(frames: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The windows ``frames[end - WINDOW_FRAMES : end]`` for each index ``end`` of ``ends``."""
    view = np.lib.stride_tricks.sliding_window_view(frames, WINDOW_FRAMES, axis=0)
    return view[ends - WINDOW_FRAMES].transpose(0, 2, 1)


def _padding() -> np.ndarray:
    return np.repeat(silence_frame()[None, :], WINDOW_FRAMES - 1, axis=0)


def score_samples(model: WakeWordModel, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a whole recording at every 80 ms hop: ``(times_s, scores)``, the same numbers a
    :class:`WakeWordDetector` computes when the recording is streamed to it."""
    mel = log_mel(samples)
    frames = np.concatenate([_padding(), mel])
    ends = np.arange(HOP_FRAMES, len(mel) + 1, HOP_FRAMES)
    if ends.size == 0:
        return np.zeros(0), np.zeros(0, np.float32)
    scores = np.concatenate(
        [
            model.score_windows(_windows_at(frames, ends[i : i + 4096] + WINDOW_FRAMES - 1))
            for i in range(0, len(ends), 4096)
        ]
    )
    return _frame_time(ends), scores


def _frame_time(frame_counts: np.ndarray) -> np.ndarray:
    """Stream time at the end of the last sample of frame ``count - 1``."""
    return ((frame_counts - 1) * FRAME_HOP + FRAME_LENGTH) / SAMPLE_RATE


def detections(
    times: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    refractory_s: float = DEFAULT_REFRACTORY_S,
    phrase: str = "",
) -> list[Detection]:
    """Detections of a score sequence: each score at or above ``threshold`` that comes at least
    ``refractory_s`` after the previous detection."""
    found: list[Detection] = []
    last = -np.inf
    for i in np.flatnonzero(scores >= threshold):
        if times[i] - last >= refractory_s:
            found.append(Detection(float(times[i]), float(scores[i]), phrase))
            last = times[i]
    return found


class WakeWordDetector:
    """One stream's detector: feed it audio of any chunk size, get :class:`Detection` events.

    Args:
        model: the shared model.
        threshold: the detection threshold (default: the model's).
        refractory_s: seconds after a detection during which no other is reported.
        verifier: a second stage (:class:`~emotivoice.wakeword.verify.WhisperVerifier`,
            shared between streams), asked at hops whose score reaches its ``gate`` (at most
            ``max_checks`` hops of each run of such hops) about the last ``window_s`` of
            audio. In its ``rescue`` mode a hop is reported when its score reaches
            ``threshold`` or the verifier accepts it; in its ``confirm`` mode only when the
            verifier accepts it (``threshold`` is not used). A verified detection's score is
            the verifier's.

    Attributes:
        verifications: how many times this stream asked the verifier.
    """

    def __init__(
        self,
        model: WakeWordModel,
        threshold: float | None = None,
        refractory_s: float = DEFAULT_REFRACTORY_S,
        verifier: WhisperVerifier | None = None,
    ) -> None:
        threshold = model.threshold if threshold is None else threshold
        if verifier is not None and verifier.phrase.lower() != model.phrase.lower():
            raise InvalidConfigError(
                f"The verifier checks {verifier.phrase!r}, the model detects {model.phrase!r}."
            )
        if not 0.0 < threshold < 1.0 or refractory_s < 0:
            raise InvalidConfigError("threshold must lie in (0, 1) and refractory_s be >= 0.")
        self.model, self.threshold, self.refractory_s = model, float(threshold), float(refractory_s)
        self.verifier = verifier
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample fed is at time 0."""
        self._pending = np.zeros(0, np.float32)  # samples from frame self._frames_done on
        self._frames = _padding()  # the last WINDOW_FRAMES - 1 frames (silence at first)
        self._frames_done = 0
        self._last_detection = -np.inf
        self.last_score = 0.0
        self._audio = np.zeros(0, np.float32)  # the verifier's recent samples
        self._audio_start = 0  # stream index of self._audio[0]
        self._run = 0  # consecutive hops at or over the threshold
        self.verifications = 0

    @property
    def time_s(self) -> float:
        """Seconds of audio fed so far."""
        return (self._frames_done * FRAME_HOP + len(self._pending)) / SAMPLE_RATE

    def scores(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed 16 kHz mono float samples; returns the ``(times_s, scores)`` of the 80 ms hops
        they complete (the first stage's; no detection logic: :meth:`feed` adds it)."""
        times, scores, _ = self._hops(samples)
        return times, scores

    def _hops(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hops ``samples`` complete: times, first-stage scores, stream index of the sample
        just after each hop's last frame."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        if self.verifier is not None:
            self._audio = np.concatenate([self._audio, samples])
        self._pending = np.concatenate([self._pending, samples])
        mel = log_mel(self._pending)
        if len(mel) == 0:
            return np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64)
        frames = np.concatenate([self._frames, mel])
        counts = np.arange(self._frames_done + 1, self._frames_done + 1 + len(mel))
        ends = counts[counts % HOP_FRAMES == 0]
        # the array index just past frame count k is k - frames_done + WINDOW_FRAMES - 1
        local = ends - self._frames_done + WINDOW_FRAMES - 1
        scores = (
            self.model.score_windows(_windows_at(frames, local))
            if ends.size
            else np.zeros(0, np.float32)
        )
        self._frames = frames[-(WINDOW_FRAMES - 1) :]
        self._frames_done += len(mel)
        self._pending = self._pending[len(mel) * FRAME_HOP :]
        if scores.size:
            self.last_score = float(scores[-1])
        return _frame_time(ends), scores, (ends - 1) * FRAME_HOP + FRAME_LENGTH

    def _window(self, end: int) -> np.ndarray:
        """The verifier's window: the stream's samples before index ``end`` (silence before
        the stream's start)."""
        assert self.verifier is not None
        size = self.verifier.options.window_samples
        start = end - size - self._audio_start
        piece = self._audio[max(start, 0) : end - self._audio_start]
        return np.concatenate([np.zeros(size - len(piece), np.float32), piece])

    def _trim_audio(self) -> None:
        """Keep the samples a later hop's window can reach."""
        if self.verifier is None:
            return
        keep_from = max(self._frames_done * FRAME_HOP - self.verifier.options.window_samples, 0)
        if keep_from > self._audio_start:
            self._audio = self._audio[keep_from - self._audio_start :]
            self._audio_start = keep_from

    def _checks(self, score: float) -> bool:
        """Whether the verifier is asked at a hop of this first-stage score (counts runs)."""
        assert self.verifier is not None
        options = self.verifier.options
        self._run = self._run + 1 if score >= options.gate else 0
        if options.mode == "rescue" and score >= self.threshold:
            return False  # the first stage detects on its own
        return 0 < self._run <= options.max_checks

    def _verify(self, end: int) -> float:
        """The verifier's score of the window ending at stream index ``end`` (counted)."""
        assert self.verifier is not None
        self.verifications += 1
        return self.verifier.score(self._window(end))

    def verified_scores(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """With a verifier: feed samples; returns each completed hop's time and its score as
        :meth:`feed` would judge it (refractory period aside), the two stages as one number
        for the streaming evaluation. ``confirm``: the verifier's score where it is asked,
        else 0 (the evaluation's thresholds are then the verifier's); ``rescue``: 1 where
        the verifier accepts, else the first stage's score (the thresholds are the first
        stage's, the verifier's own stays fixed)."""
        if self.verifier is None:
            raise InvalidConfigError("verified_scores needs a detector with a verifier.")
        options = self.verifier.options
        times, scores, ends = self._hops(samples)
        rescue = options.mode == "rescue"
        out = scores.astype(np.float32) if rescue else np.zeros(len(scores), np.float32)
        for i, score in enumerate(scores):
            if not self._checks(float(score)):
                continue
            verified = self._verify(int(ends[i]))
            if not rescue:
                out[i] = verified
            elif verified >= options.threshold:
                out[i] = 1.0
        self._trim_audio()
        return times, out

    def feed(self, samples: np.ndarray) -> list[Detection]:
        """Feed 16 kHz mono float samples; returns the detections they complete."""
        found: list[Detection] = []
        times, scores, ends = self._hops(samples)
        alone = self.verifier is None or self.verifier.options.mode == "rescue"
        for time_s, score, end in zip(times, scores, ends, strict=True):
            quiet = time_s - self._last_detection >= self.refractory_s
            if alone and score >= self.threshold and quiet:
                found.append(Detection(float(time_s), float(score), self.model.phrase))
                self._last_detection = time_s
            if self.verifier is None or not self._checks(float(score)) or not quiet:
                continue
            verified = self._verify(int(end))
            if verified >= self.verifier.options.threshold:
                found.append(Detection(float(time_s), float(verified), self.model.phrase))
                self._last_detection = time_s
        self._trim_audio()
        return found


class VerifiedModel:
    """A model and its second stage, scored as one (the evaluation's
    :class:`~emotivoice.wakeword.evaluate.StreamScorer`): each hop's score is the verifier's
    where the detector would ask it, else 0, so the evaluation's thresholds are the
    verifier's, at the verifier's gate.

    Attributes:
        model: the first stage.
        verifier: the second.
        verifications: after :meth:`score_streams`, how many times each stream asked the
            verifier (every run of gated hops, refractory periods aside: an upper bound).
    """

    def __init__(self, model: WakeWordModel, verifier: WhisperVerifier) -> None:
        self.model, self.verifier = model, verifier
        self.verifications: list[int] = []

    @property
    def phrase(self) -> str:
        """The wake phrase."""
        return self.model.phrase

    @property
    def threshold(self) -> float:
        """The threshold the evaluation's figures use at "the model's threshold": the first
        stage's in ``rescue`` mode, the verifier's in ``confirm`` mode."""
        if self.verifier.options.mode == "rescue":
            return self.model.threshold
        return self.verifier.options.threshold

    @property
    def path(self) -> str:
        """The model file and the verifier."""
        options = self.verifier.options
        return (
            f"{self.model.path} + {options.whisper_model} verifier ({options.mode}, gate "
            f"{options.gate:g}, threshold {options.threshold:g})"
        )

    def detector(self, refractory_s: float = DEFAULT_REFRACTORY_S) -> WakeWordDetector:
        """A new stream's detector with both stages."""
        return self.model.detector(None, refractory_s, self.verifier)

    def score_streams(
        self, streams: Sequence[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        """As :meth:`WakeWordModel.score_streams`, both stages (the CPU time includes the
        verifier's)."""
        out = []
        self.verifications = []
        started = time.process_time()
        # rescue: every gated hop is verified, also over the first stage's threshold, so
        # that the evaluation's thresholds above the model's see the verifier's answers too
        threshold = _ASK_ALWAYS if self.verifier.options.mode == "rescue" else None
        for samples in streams:
            detector = self.model.detector(threshold, DEFAULT_REFRACTORY_S, self.verifier)
            out.append(_scored_live(detector.verified_scores, samples))
            self.verifications.append(detector.verifications)
        return out, time.process_time() - started


def _scored_live(
    score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A recording's ``(hop times, scores)``, fed to ``score`` (a fresh detector's) in 30 s
    chunks, as a live stream is."""
    step = int(_STREAM_CHUNK_S * SAMPLE_RATE)
    pieces = [score(samples[start : start + step]) for start in range(0, len(samples), step)]
    return np.concatenate([t for t, _ in pieces]), np.concatenate([s for _, s in pieces])
