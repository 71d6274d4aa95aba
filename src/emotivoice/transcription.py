"""Whisper transcription per speech segment on the fast runtime (faster-whisper / CTranslate2).

Each segment is at most one Whisper window (30 s), so its encoder runs exactly once: the encoder
output serves language detection, decoding, word alignment and - through
:meth:`EncodedSegment.states` - later stages such as the emotion head.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError
from emotivoice.models.registry import DEFAULT_MODEL
from emotivoice.models.whisper import default_compute_type, load_model, resolve_device
from emotivoice.results import Word

if TYPE_CHECKING:
    import ctranslate2
    from faster_whisper import WhisperModel

__all__ = [
    "ENCODER_WINDOWS",
    "LANGUAGE_CONFIDENCE",
    "EncodedSegment",
    "SegmentTranscript",
    "Transcriber",
    "TranscriptionOptions",
    "fitted_window",
    "log_mel_batch",
    "supported_languages",
]

logger = logging.getLogger(__name__)

# Below this probability a segment's own language guess (short interjections, noise) is not
# trusted and the language of the preceding speech carries over.
LANGUAGE_CONFIDENCE = 0.5
_ENCODER_FRAMES_PER_MEL_FRAME = 2  # the encoder's second convolution has stride 2
_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]  # faster-whisper's fallback schedule
_WINDOW_FRAMES = 3000  # mel frames (10 ms each) of Whisper's 30-second window
_PROMPT_CONTEXT_TOKENS = 223  # Whisper's n_text_ctx // 2 - 1, as faster-whisper trims prompts
_MEL_FRAMES_PER_S = 100
#: how long an encoder window a segment gets: ``fit`` (just longer than the segment, whole
#: seconds, at least 5 s) or ``full`` (Whisper's 30 s, whatever the segment's length)
ENCODER_WINDOWS = ("fit", "full")
# Whisper mistranscribes short speech in a window much shorter than its 30 s (measured, no
# prompt: JFK's 1.4 s "ask not" is "is not" in 3-4 s windows, right from 5 s on).
_MIN_WINDOW_FRAMES = 500
# Silence after the audio in a fitted window, mel frames. With 1 s Whisper went on past the end
# of a 4.9 s segment and repeated it (stereo_diarization.wav, left channel); from 2 s on it ends
# where the speech does (checked with 2, 3 and 5 s).
FIT_MARGIN_FRAMES = 200
# The worst case is bounded by the audio's length (hard audio makes Whisper loop on invented
# text and fall back through every temperature; measured: 3-10x real time on noisy Polish):
# - a decoding pass may write at most this many tokens per second of audio (fast speech in a
#   language the tokenizer splits finely, Polish, is about 8 a second, timestamps included), so
#   a repetition loop stops at a length proportional to the audio instead of 448 tokens;
DECODE_TOKENS_PER_S = 12
DECODE_TOKENS_SLACK = 16
# - a segment gets at most this many decoding passes, plus one per 15 s of audio: the first
#   pass always runs; retries at higher temperatures (after a pass fails the checks below) and
#   further 30 s windows (after a window whose text stops short of the segment's end) share
#   the rest. Counting passes, not seconds, keeps the result the same on a busy machine.
MAX_DECODING_PASSES = 2
# faster-whisper's own checks of a pass (its transcribe() defaults): a text that compresses more
# than this is repetitive, a lower mean token log-probability is a guess; either asks for a
# pass at the next temperature, unless Whisper says the audio is not speech.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


@dataclass(frozen=True)
class TranscriptionOptions:
    """How Whisper transcribes.

    Attributes:
        model: a name from :func:`emotivoice.models.available_models`, a CTranslate2
            directory or a Hugging Face id.
        language: ISO code to force (``en``, ``de``, ...); ``None`` detects it per segment.
        beam_size: beam width; 1 is greedy decoding (the fast mode).
        device: ``auto``, ``cpu`` or ``cuda``.
        compute_type: CTranslate2 compute type; default int8 on CPU and float16 on CUDA.
        word_timestamps: align words to time with the cross-attention alignment heads.
        condition_on_previous_text: prompt each segment with the previous segment's text.
        cpu_threads: CTranslate2 threads (0: CTranslate2's default).
        encoder_window: ``fit`` (default): each segment is encoded in a window just longer
            than itself (whole seconds with 2 s of silence after the audio, at least 5 s):
            the encoder's cost follows the segment's length instead of always paying for
            30 s (about twice as fast over the reference utterances, the same or better
            text); ``full``: Whisper's 30 s window for every segment, as Whisper was trained.
    """

    model: str = DEFAULT_MODEL
    language: str | None = None
    beam_size: int = 5
    device: str = "auto"
    compute_type: str | None = None
    word_timestamps: bool = True
    condition_on_previous_text: bool = True
    cpu_threads: int = 0
    encoder_window: str = "fit"

    def __post_init__(self) -> None:
        if self.encoder_window not in ENCODER_WINDOWS:
            raise InvalidConfigError(
                f"encoder_window must be one of {ENCODER_WINDOWS}, got {self.encoder_window!r}."
            )
        if self.beam_size < 1:
            raise InvalidConfigError("beam_size must be at least 1.")
        if self.cpu_threads < 0:
            raise InvalidConfigError("cpu_threads must not be negative.")
        resolve_device(self.device)  # rejects unknown devices with the list of valid ones


@dataclass(frozen=True)
class SegmentTranscript:
    """Whisper's output for one segment; times are absolute (seconds in the file)."""

    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]
    tokens: tuple[int, ...] = field(repr=False)
    low_confidence: bool = False


@dataclass(frozen=True, eq=False)
class EncodedSegment:
    """A segment's log-mel features and its Whisper encoder output (computed once).

    Attributes:
        features: log-mel features ``(n_mels, n_frames + 1)`` of the segment, unpadded.
        encoder_output: CTranslate2 encoder output for the padded window (fitted to the
            segment, or Whisper's 30 s; of a whole batch of segments when they were encoded
            together: see ``index``).
        n_frames: number of mel frames that hold the segment's audio.
        index: this segment's row in ``encoder_output`` (0 unless encoded in a batch).
    """

    features: np.ndarray
    encoder_output: ctranslate2.StorageView
    n_frames: int
    index: int = 0

    @staticmethod
    def own_frames(features: np.ndarray, n_frames: int) -> np.ndarray:
        """The log-mel frames of whole encoder positions of the audio (no padding), at most
        one 30 s window."""
        n_positions = max(1, min(n_frames, _WINDOW_FRAMES) // _ENCODER_FRAMES_PER_MEL_FRAME)
        return features[:, : n_positions * _ENCODER_FRAMES_PER_MEL_FRAME]

    @property
    def own_features(self) -> np.ndarray:
        """Log-mel frames of the segment's own audio, what the emotion head's encoder prefix
        reads: ``(n_mels, 2 * n_positions)``."""
        return self.own_frames(self.features, self.n_frames)

    @cached_property
    def states(self) -> np.ndarray:
        """Encoder states of the segment's audio (padding dropped): ``(n_positions, d_model)``.

        This is what the emotion head consumes; a second encoder pass is never needed.
        """
        n_positions = max(1, self.n_frames // _ENCODER_FRAMES_PER_MEL_FRAME)
        full = np.asarray(self.encoder_output)
        return np.array(full[self.index, :n_positions], dtype=np.float32)


def fitted_window(n_samples: int, margin_frames: int = FIT_MARGIN_FRAMES) -> int:
    """Encoder window (mel frames) for ``n_samples`` of 16 kHz audio: whole seconds holding the
    audio and ``margin_frames`` of silence after it, at least 5 s, at most Whisper's 30 s."""
    n_frames = n_samples * _MEL_FRAMES_PER_S // SAMPLE_RATE + margin_frames
    seconds = -(-n_frames // _MEL_FRAMES_PER_S)
    return min(_WINDOW_FRAMES, max(_MIN_WINDOW_FRAMES, seconds * _MEL_FRAMES_PER_S))


def supported_languages() -> list[str]:
    """ISO codes of the languages Whisper (multilingual) can transcribe."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return sorted(_LANGUAGE_CODES)


def log_mel_batch(
    segments: Sequence[np.ndarray], extractor: Any, device: str = "cpu"
) -> list[np.ndarray]:
    """Whisper's log-mel frames ``(n_mels, frames)`` of each segment, as faster-whisper's
    ``FeatureExtractor`` (``extractor``) makes them one segment at a time.

    On ``cuda`` (with PyTorch) the whole batch is one call on the GPU: each segment padded as
    the extractor pads it (160 zeros, then 200 samples reflected at each end) into one zero-padded
    array, framed, windowed, transformed and mapped to mels there, each row's dynamic range
    (its maximum minus 8) taken over its own frames; the float32 arithmetic is the same, its
    order differs (values within about 1e-5). Elsewhere: the extractor, segment by segment (the
    unbatched path's exact frames).
    """
    if device != "cuda" or not segments:
        return [extractor(np.asarray(s, dtype=np.float32)) for s in segments]
    return _torch_log_mel(segments, extractor, device)


def _torch_log_mel(segments: Sequence[np.ndarray], extractor: Any, device: str) -> list[np.ndarray]:
    """:func:`log_mel_batch`'s one call through PyTorch on ``device``."""
    import torch

    n_fft, hop = extractor.n_fft, extractor.hop_length
    padded = [
        np.pad(np.pad(np.asarray(s, dtype=np.float32), (0, hop)), n_fft // 2, mode="reflect")
        for s in segments
    ]
    # stft frames of each row, the last dropped as the extractor drops it
    frames = [(p.size - n_fft) // hop for p in padded]
    batch = np.zeros((len(padded), max(p.size for p in padded)), dtype=np.float32)
    for row, p in enumerate(padded):
        batch[row, : p.size] = p
    with torch.inference_mode():
        x = torch.from_numpy(batch).to(device, non_blocking=True)
        window = torch.hann_window(n_fft, periodic=True, device=device)
        framed = x.unfold(1, n_fft, hop)[:, : max(frames)] * window
        power = torch.fft.rfft(framed, dim=-1).abs() ** 2
        filters = torch.from_numpy(np.asarray(extractor.mel_filters, dtype=np.float32))
        mel = power @ filters.to(device).T  # (batch, frames, n_mels)
        log_spec = torch.log10(torch.clamp(mel, min=1e-10))
        valid = (
            torch.arange(mel.shape[1], device=device)[None, :]
            < torch.tensor(frames, device=device)[:, None]
        )
        peak = torch.where(valid[:, :, None], log_spec, -torch.inf).amax(dim=(1, 2))
        log_spec = (torch.maximum(log_spec, (peak - 8.0)[:, None, None]) + 4.0) / 4.0
        out = log_spec.transpose(1, 2).float().cpu().numpy()
    return [np.ascontiguousarray(out[row, :, :n]) for row, n in enumerate(frames)]


class Transcriber:
    """Encodes, detects the language of and transcribes speech segments.

    The underlying model is shared per process; a ``Transcriber`` itself holds only options.
    """

    def __init__(self, options: TranscriptionOptions | None = None) -> None:
        self.options = options or TranscriptionOptions()
        self.device = resolve_device(self.options.device)
        self.compute_type = self.options.compute_type or default_compute_type(self.device)
        self.model: WhisperModel = load_model(
            self.options.model, self.device, self.compute_type, self.options.cpu_threads
        )
        language = self.options.language
        if language is not None:
            if language not in supported_languages():
                raise InvalidConfigError(
                    f"Unknown language {language!r}; supported languages = {supported_languages()}"
                )
            if not self.model.model.is_multilingual and language != "en":
                raise InvalidConfigError(
                    f"Model {self.options.model!r} is English-only; it cannot transcribe "
                    f"{language!r}. Use a multilingual model such as 'base'."
                )

    @property
    def is_multilingual(self) -> bool:
        """Whether the loaded model knows languages other than English."""
        return bool(self.model.model.is_multilingual)

    def encode(self, samples: np.ndarray, window_frames: int | None = None) -> EncodedSegment:
        """Run the log-mel front end and the encoder once for a segment (≤ 30 s).

        Args:
            samples: 16 kHz mono audio of the segment.
            window_frames: mel frames the encoder sees (default: as ``encoder_window`` says,
                :func:`fitted_window` or Whisper's full 30 s window of 3000).
        """
        from faster_whisper.audio import pad_or_trim

        features = self.model.feature_extractor(samples)
        n_frames = features.shape[-1] - 1
        if window_frames is None:
            full = self.options.encoder_window == "full"
            window_frames = _WINDOW_FRAMES if full else fitted_window(samples.size)
        window = pad_or_trim(features, window_frames)
        encoder_output = self.model.encode(np.ascontiguousarray(window))
        return EncodedSegment(features=features, encoder_output=encoder_output, n_frames=n_frames)

    def detect_language(self, encoded: EncodedSegment) -> list[tuple[str, float]]:
        """Language probabilities for a segment, most likely first, from its encoder output."""
        if not self.is_multilingual:
            return [("en", 1.0)]
        results = self.model.model.detect_language(encoded.encoder_output)[encoded.index]
        return [(token[2:-2], float(prob)) for token, prob in results]

    def encode_batch(self, segments: Sequence[np.ndarray]) -> list[EncodedSegment]:
        """Encode several segments (each at most 30 s) in one encoder call: the batch path's
        :meth:`encode`. The log-mel frames of the batch are made in one call
        (:func:`log_mel_batch`: on the GPU when the model runs there), and the batch shares one
        window: fitted to its longest segment (:func:`fitted_window`) when ``encoder_window``
        is ``fit``, else Whisper's 30 s. The segments share one encoder output (each holds its
        row, ``index``); :meth:`detect_languages` and :meth:`transcribe_batch` read it whole."""
        from faster_whisper.audio import pad_or_trim

        if not segments:
            return []
        features = log_mel_batch(segments, self.model.feature_extractor, self.device)
        window = self.batch_window(segments)
        windows = np.stack([pad_or_trim(f, window) for f in features])
        output = self.model.encode(np.ascontiguousarray(windows))
        return [
            EncodedSegment(features=f, encoder_output=output, n_frames=f.shape[-1] - 1, index=i)
            for i, f in enumerate(features)
        ]

    def batch_window(self, segments: Sequence[np.ndarray]) -> int:
        """Mel frames of the encoder window that a batch of ``segments`` shares."""
        if self.options.encoder_window == "full":
            return _WINDOW_FRAMES
        return fitted_window(max(len(s) for s in segments))

    def detect_languages(self, encoded: Sequence[EncodedSegment]) -> list[list[tuple[str, float]]]:
        """:meth:`detect_language` of segments encoded together, in one call."""
        if not encoded:
            return []
        if not self.is_multilingual:
            return [[("en", 1.0)] for _ in encoded]
        results = self.model.model.detect_language(encoded[0].encoder_output)
        return [[(t[2:-2], float(p)) for t, p in results[e.index]] for e in encoded]

    def transcribe_batch(
        self,
        encoded: Sequence[EncodedSegment],
        languages: Sequence[str],
        language_probabilities: Sequence[float],
        offsets: Sequence[float],
    ) -> list[SegmentTranscript]:
        """Decode segments encoded together (:meth:`encode_batch`), each in its language.

        One batched decoder call per language, as faster-whisper's ``BatchedInferencePipeline``
        decodes: one pass at temperature 0 (no fallback), no previous text as prompt (the
        segments of a batch are decoded at the same time), no timestamp tokens, the beam of the
        options, the token cap of :meth:`transcribe` (per segment); word times from one
        batched alignment. A pass
        that fails Whisper's checks or reaches its cap is ``low_confidence``.
        """
        from faster_whisper.audio import pad_or_trim

        out: list[SegmentTranscript | None] = [None] * len(encoded)
        by_language: dict[str, list[int]] = {}
        for i, language in enumerate(languages):
            by_language.setdefault(language, []).append(i)
        for language, rows in by_language.items():
            group = [encoded[i] for i in rows]
            if len(by_language) == 1 and [e.index for e in group] == list(range(len(group))):
                storage = group[0].encoder_output
            else:  # a mixed batch: each language's rows encoded again, on their own
                window = int(group[0].encoder_output.shape[1]) * _ENCODER_FRAMES_PER_MEL_FRAME
                windows = np.stack([pad_or_trim(e.features, window) for e in group])
                storage = self.model.encode(np.ascontiguousarray(windows))
            decoded = self._decode_group(
                group,
                storage,
                language,
                [language_probabilities[i] for i in rows],
                [offsets[i] for i in rows],
            )
            for i, transcript in zip(rows, decoded, strict=True):
                out[i] = transcript
        return [t for t in out if t is not None]

    def _decode_group(
        self,
        group: Sequence[EncodedSegment],
        storage: ctranslate2.StorageView,
        language: str,
        probabilities: Sequence[float],
        offsets: Sequence[float],
    ) -> list[SegmentTranscript]:
        """One batched decoder call (and one alignment) for segments of one language."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_compression_ratio

        tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.is_multilingual, task="transcribe", language=language
        )
        options = self._decoding_options(tokenizer, ())
        # no timestamp tokens (faster-whisper's batched default): a segment is at most one
        # window and its words get their times from the alignment (see docs/benchmarks.md for
        # what timestamp tokens cost a batch on a GPU)
        prompt = self.model.get_prompt(tokenizer, [], without_timestamps=True)
        room = self.model.max_length - len(prompt)
        caps = [
            min(
                int(e.n_frames / _MEL_FRAMES_PER_S * DECODE_TOKENS_PER_S) + DECODE_TOKENS_SLACK,
                room,
            )
            for e in group
        ]
        results = self.model.model.generate(
            storage,
            [list(prompt) for _ in group],
            beam_size=self.options.beam_size,
            patience=options.patience,
            length_penalty=options.length_penalty,
            max_length=len(prompt) + max(caps),
            suppress_blank=options.suppress_blank,
            suppress_tokens=options.suppress_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            sampling_temperature=_TEMPERATURES[0],
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
        )
        pieces: list[list[dict[str, Any]]] = []
        for e, result, cap in zip(group, results, caps, strict=True):
            tokens = list(result.sequences_ids[0])[:cap]
            split, _, _ = self.model._split_segments_by_timestamps(
                tokenizer=tokenizer,
                tokens=tokens,
                time_offset=0.0,
                segment_size=e.n_frames,
                segment_duration=e.n_frames / _MEL_FRAMES_PER_S,
                seek=0,
            )
            pieces.append([dict(piece, seek=0) for piece in split])
        if self.options.word_timestamps:
            self.model.add_word_timestamps(
                pieces,
                tokenizer,
                storage,
                [e.n_frames for e in group],
                options.prepend_punctuations,
                options.append_punctuations,
                0.0,
            )
        transcripts = []
        for item, result, cap, offset, probability in zip(
            pieces, results, caps, offsets, probabilities, strict=True
        ):
            kept = tuple(t for piece in item for t in piece["tokens"])
            text = "".join(tokenizer.decode(piece["tokens"]) for piece in item).strip()
            n = len(result.sequences_ids[0])
            avg_logprob = float(result.scores[0]) * n / (n + 1)  # faster-whisper's, penalty 1
            no_speech = float(result.no_speech_prob)
            silent = no_speech > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD
            failed = not silent and (
                get_compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD
                or avg_logprob < LOG_PROB_THRESHOLD
            )
            words = tuple(
                Word(
                    start=round(float(offset + w["start"]), 3),
                    end=round(float(offset + w["end"]), 3),
                    text=w["word"],
                    probability=round(float(w["probability"]), 4),
                )
                for piece in item
                for w in piece.get("words", ())
            )
            transcripts.append(
                SegmentTranscript(
                    text=text,
                    language=language,
                    language_probability=probability,
                    avg_logprob=avg_logprob,
                    no_speech_prob=no_speech,
                    words=words,
                    tokens=kept,
                    low_confidence=failed or n >= cap,
                )
            )
        return transcripts

    def transcribe(
        self,
        encoded: EncodedSegment,
        language: str,
        language_probability: float,
        offset: float,
        previous_tokens: tuple[int, ...] = (),
        *,
        max_new_tokens: int | None = None,
        fallback: bool = True,
    ) -> SegmentTranscript:
        """Decode one encoded segment in ``language``; ``offset`` is its start in the file.

        The work is bounded by the segment's length: at most :data:`DECODE_TOKENS_PER_S` tokens
        a second of audio per pass (``max_new_tokens`` sets another cap) and at most
        :data:`MAX_DECODING_PASSES` passes plus one per 15 s of audio, retries and further
        windows included; ``fallback=False`` allows no retry at a higher temperature. A
        transcript whose chosen pass failed Whisper's checks, or ran into the token cap, or
        whose later windows were left out, is ``low_confidence``.
        """
        from faster_whisper.tokenizer import Tokenizer

        if encoded.encoder_output.shape[0] != 1:
            raise InvalidConfigError(
                "transcribe() decodes a segment encoded on its own (encode); segments encoded "
                "together (encode_batch) are decoded together: transcribe_batch()"
            )
        tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.is_multilingual, task="transcribe", language=language
        )
        audio_s = encoded.n_frames / _MEL_FRAMES_PER_S
        cap = int(audio_s * DECODE_TOKENS_PER_S) + DECODE_TOKENS_SLACK
        if max_new_tokens is not None:
            cap = min(cap, max_new_tokens)
        # the prompt (at most the trimmed context and the start tokens) and the new tokens share
        # Whisper's 448 positions
        cap = min(cap, self.model.max_length - _PROMPT_CONTEXT_TOKENS - 4)
        options = dataclasses.replace(
            self._decoding_options(tokenizer, previous_tokens),
            max_new_tokens=cap,
            temperatures=_LimitedPasses(MAX_DECODING_PASSES + int(audio_s // 15), fallback),
        )
        pieces, cut = [], False
        try:
            for piece in self.model.generate_segments(
                encoded.features, tokenizer, options, False, encoded.encoder_output
            ):
                pieces.append(piece)
        except _BudgetSpent:
            logger.debug("Decoding budget spent; the rest of the segment is left out")
            cut = True
        words = tuple(
            Word(
                start=round(float(offset + w.start), 3),
                end=round(float(offset + w.end), 3),
                text=w.word,
                probability=round(float(w.probability), 4),
            )
            for piece in pieces
            for w in piece.words or ()
        )
        tokens = tuple(t for piece in pieces for t in piece.tokens)
        low_confidence = cut or len(tokens) >= cap or any(_failed_checks(p) for p in pieces)
        n_tokens = max(1, len(tokens))
        avg_logprob = (
            sum(p.avg_logprob * max(1, len(p.tokens)) for p in pieces) / n_tokens if pieces else 0.0
        )
        no_speech = max((p.no_speech_prob for p in pieces), default=1.0)
        return SegmentTranscript(
            text="".join(p.text for p in pieces).strip(),
            language=language,
            language_probability=language_probability,
            avg_logprob=float(avg_logprob),
            no_speech_prob=float(no_speech),
            words=words,
            tokens=tokens,
            low_confidence=low_confidence,
        )

    def _decoding_options(self, tokenizer: object, previous_tokens: tuple[int, ...]) -> Any:
        """faster-whisper's decoding options with its own transcribe() defaults."""
        from faster_whisper.transcribe import TranscriptionOptions as FwOptions
        from faster_whisper.transcribe import get_suppressed_tokens

        prompt = list(previous_tokens[-_PROMPT_CONTEXT_TOKENS:])
        return FwOptions(
            beam_size=self.options.beam_size,
            best_of=5,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            log_prob_threshold=LOG_PROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD,
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            condition_on_previous_text=self.options.condition_on_previous_text,
            prompt_reset_on_temperature=0.5,
            temperatures=_TEMPERATURES,
            initial_prompt=prompt if self.options.condition_on_previous_text and prompt else None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=False,
            max_initial_timestamp=1.0,
            word_timestamps=self.options.word_timestamps,
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps=[0.0],
            hallucination_silence_threshold=None,
            hotwords=None,
        )


def _failed_checks(piece: Any) -> bool:
    """Whether a decoded piece failed faster-whisper's checks (and is not silence)."""
    if piece.no_speech_prob > NO_SPEECH_THRESHOLD and piece.avg_logprob < LOG_PROB_THRESHOLD:
        return False
    return bool(
        piece.compression_ratio > COMPRESSION_RATIO_THRESHOLD
        or piece.avg_logprob < LOG_PROB_THRESHOLD
    )


class _BudgetSpent(Exception):
    """Raised inside faster-whisper's decoding loop to stop a segment's decoding."""


class _LimitedPasses(Sequence[float]):
    """Whisper's fallback temperatures, handed out for at most ``max_passes`` passes.

    faster-whisper decodes a segment window by window (after a pass whose last timestamp falls
    short of the end, it encodes and decodes again from there) and, in each window, tries
    ``for temperature in options.temperatures`` until a pass meets its checks, else keeps the
    best pass. Iterating this sequence bounds both without a copy of that loop: each
    temperature handed out is one pass; a window's retries stop when the passes are used up,
    and a window that starts then raises :class:`_BudgetSpent` (hard audio makes every pass
    invent text to its token cap and the windows go on: measured, three windows and 10 s for
    1.6 s of noisy speech); the windows already decoded are kept.
    """

    def __init__(self, max_passes: int, retries: bool = True) -> None:
        self._max_passes = max_passes
        self._retries = retries  # False: one temperature a window (quick provisional passes)
        self._passes = 0
        self._windows = 0

    def __iter__(self) -> Iterator[float]:
        if self._windows and self._passes >= self._max_passes:
            raise _BudgetSpent
        self._windows += 1
        return self._temperatures()

    def _temperatures(self) -> Iterator[float]:
        for i, temperature in enumerate(_TEMPERATURES):
            if i and (not self._retries or self._passes >= self._max_passes):
                logger.debug("Decoding passes used up before temperature %.1f", temperature)
                return
            self._passes += 1
            yield temperature

    def __len__(self) -> int:
        return len(_TEMPERATURES)

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        return _TEMPERATURES[index]
