"""Speaker labels for a live stream: each final segment joins the nearest known voice or, when
no known voice is near enough, becomes a new speaker.

Batch analysis clusters all of a recording's windows at once; a stream cannot wait for the end,
so each final segment is embedded when it is made (its 1.6 s windows, averaged) and compared
with the running average embedding of every speaker heard so far. Labels never change once
sent; a voice that drifts (emotion, distance to the microphone) may get a second label.
"""

from __future__ import annotations

import logging

import numpy as np

from emotivoice.diarization.core import DiarizationOptions, embed_speech, speaker_name
from emotivoice.diarization.embedding import HOP, VoiceEncoder, load_voice_encoder
from emotivoice.segmentation import SpeechSpan

__all__ = ["ONLINE_THRESHOLD", "OnlineSpeakers"]

logger = logging.getLogger(__name__)

#: Cosine distance between a segment's average embedding and a speaker's running average above
#: which the segment is a new speaker. Averages of several windows sit closer together than
#: single windows, so this is below the batch clustering threshold; chosen on the ``dev``
#: speakers' conversations (``evaluation.diarization``).
ONLINE_THRESHOLD = 0.20


class OnlineSpeakers:
    """Assigns speakers to segments one at a time (not thread-safe; one per stream)."""

    def __init__(
        self,
        options: DiarizationOptions | None = None,
        encoder: VoiceEncoder | None = None,
        threshold: float = ONLINE_THRESHOLD,
    ) -> None:
        self.options = options or DiarizationOptions()
        self.encoder = encoder or load_voice_encoder()
        self.threshold = threshold
        self._sums: list[np.ndarray] = []

    @property
    def speakers(self) -> tuple[str, ...]:
        """The labels given so far, in order of first appearance."""
        return tuple(speaker_name(i) for i in range(len(self._sums)))

    def embed(self, samples: np.ndarray) -> np.ndarray:
        """The unit-length average embedding of 16 kHz ``samples`` (1.6 s windows)."""
        whole = [SpeechSpan(0, samples.size)]
        windows, _ = embed_speech(samples, whole, self.options.hop_s, self.encoder)
        mean = windows.mean(axis=0)
        unit: np.ndarray = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return unit

    def assign(self, samples: np.ndarray) -> str | None:
        """The speaker of one final segment's samples (``None`` for under 10 ms of audio)."""
        if samples.size < HOP:
            return None
        vector = self.embed(samples)
        limit = self.options.speakers or self.options.max_speakers
        if self._sums:
            centroids = np.stack([s / np.linalg.norm(s) for s in self._sums])
            similarity = centroids @ vector
            best = int(np.argmax(similarity))
            if 1.0 - similarity[best] <= self.threshold or len(self._sums) >= limit:
                self._sums[best] = self._sums[best] + vector
                return speaker_name(best)
        self._sums.append(vector.copy())
        logger.debug("New live speaker %s", speaker_name(len(self._sums) - 1))
        return speaker_name(len(self._sums) - 1)
