"""Shared by the assistant's tests: the real models (loaded once) and real emotional speech from
the shared data (RAVDESS actors saying "Kids are talking by the door" angrily, sadly,
neutrally)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio

# RAVDESS file names: modality-channel-emotion-intensity-statement-repetition-actor
CLIPS = {
    "angry": "Actor_01/03-01-05-02-01-01-01.flac",
    "sad": "Actor_02/03-01-04-02-01-01-02.flac",
    "neutral": "Actor_01/03-01-01-01-01-01-01.flac",
}


@pytest.fixture(scope="session")
def clips(data_dir: Path) -> dict[str, Path]:
    return {name: data_dir / "ravdess" / path for name, path in CLIPS.items()}


@pytest.fixture(scope="session")
def two_questions(clips: dict[str, Path]) -> np.ndarray:
    """An angry utterance, a second of silence, a sad one: a two-turn conversation."""
    angry, sad = (load_audio(clips[name]).samples for name in ("angry", "sad"))
    return np.concatenate([angry, np.zeros(SAMPLE_RATE, np.float32), sad])


@pytest.fixture(scope="session")
def analyzer():  # type: ignore[no-untyped-def]
    from emotivoice.pipeline import Analyzer

    return Analyzer()


@pytest.fixture(scope="session")
def local_model():  # type: ignore[no-untyped-def]
    pytest.importorskip("cyllama")
    from emotivoice.assistant.llm import LocalModel

    return LocalModel()


@pytest.fixture(scope="session")
def espeak():  # type: ignore[no-untyped-def]
    from emotivoice.assistant.speech import default_speaker

    return default_speaker("espeak-ng")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function giving a loopback port nothing listens on."""
    return _free_port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """The ``/v1`` URL of a real loopback socket that accepts connections and never answers
    (a language model server that hangs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        for connection in accepted:
            connection.close()
        listener.close()
