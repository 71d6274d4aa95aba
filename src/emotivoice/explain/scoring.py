"""The model function explanations query: waveform → base-emotion probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotivoice.emotion.recognizer import EmotionOptions, load_backend
from emotivoice.explain.attribution import BatchScorer


def emotion_scorer(
    options: EmotionOptions | None = None, whisper_model: str = "base", cpu_threads: int = 0
) -> BatchScorer:
    """A batch scorer running the pipeline's encoder and the emotion backend on each waveform."""
    from emotivoice.transcription import Transcriber, TranscriptionOptions

    backend = load_backend(options or EmotionOptions())
    transcriber = Transcriber(TranscriptionOptions(model=whisper_model, cpu_threads=cpu_threads))

    def score(waves: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(
            [backend.probabilities(w, transcriber.encode(np.asarray(w, np.float32))) for w in waves]
        )

    return score
