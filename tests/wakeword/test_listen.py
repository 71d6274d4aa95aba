"""Listening sources: raw PCM streams (odd byte counts), files, and a missing microphone."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from emotivoice.errors import MicrophoneUnavailableError
from emotivoice.wakeword import (
    detections,
    listen_file,
    listen_microphone,
    listen_pcm,
    load_model,
    score_samples,
)
from emotivoice.wakeword.listen import pcm_chunks


class _Trickle(io.RawIOBase):
    """A byte stream that returns at most 333 bytes a read (odd: samples split across reads)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        piece = self.data[self.position : self.position + min(size, 333)]
        self.position += len(piece)
        return piece


def test_pcm_chunks_rejoin_samples_split_across_reads(jfk_samples: np.ndarray) -> None:
    pcm = (np.clip(jfk_samples[:16000], -1, 1) * 32767).astype("<i2")
    got = np.concatenate(list(pcm_chunks(_Trickle(pcm.tobytes()))))  # type: ignore[arg-type]
    np.testing.assert_allclose(got, pcm / 32768.0)


def test_file_and_pcm_sources_give_the_detector_their_samples(
    jfk_path: Path, jfk_samples: np.ndarray
) -> None:
    model = load_model("hey_jarvis")
    times, scores = score_samples(model, jfk_samples)
    expected = [d.time_s for d in detections(times, scores, 0.01)]
    assert expected  # the low threshold fires on ordinary speech
    assert [d.time_s for d in listen_file(jfk_path, model.detector(threshold=0.01))] == expected
    pcm = (np.clip(jfk_samples, -1, 1) * 32767).astype("<i2")
    times, scores = score_samples(model, pcm / 32768.0)
    from_pcm = listen_pcm(io.BytesIO(pcm.tobytes()), model.detector(threshold=0.01))
    assert [d.time_s for d in from_pcm] == [d.time_s for d in detections(times, scores, 0.01)]


def test_a_missing_microphone_library_is_a_named_error() -> None:
    detector = load_model("hey_jarvis").detector()
    with (
        mock.patch.dict(sys.modules, {"sounddevice": None}),
        pytest.raises(MicrophoneUnavailableError, match="sounddevice") as raised,
    ):
        listen_microphone(detector, seconds=0.1)
    assert raised.value.code == "MICROPHONE_UNAVAILABLE"
