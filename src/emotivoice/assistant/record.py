"""Writing a conversation down: per turn the reply's audio (``turn-NN.wav``) and its trace
(``turn-NN.json``), and every turn as one line of ``turns.jsonl``."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from emotivoice.assistant.turns import Turn
from emotivoice.audio import SAMPLE_RATE, to_pcm16

__all__ = ["TurnLog", "write_wav"]

JSONL = "turns.jsonl"


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16 kHz mono 16-bit WAV of float samples."""
    pcm = to_pcm16(samples)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return path


class TurnLog:
    """An ``on_turn`` callback that writes each turn into ``folder`` (created if needed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / JSONL).write_text("", encoding="utf-8")

    def __call__(self, turn: Turn) -> None:
        stem = f"turn-{turn.index:02d}"
        record = turn.to_dict() | {"audio_file": f"{stem}.wav"}
        write_wav(self.folder / f"{stem}.wav", turn.audio)
        text = json.dumps(record, indent=2, ensure_ascii=False)
        (self.folder / f"{stem}.json").write_text(text + "\n", encoding="utf-8")
        with (self.folder / JSONL).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
