"""Real speech with no wake word in it, from the shared data, split by speaker.

RAVDESS actors 01-14 and five nEMO speakers train, actors 15-16 and one nEMO speaker validate,
actors 17-20, three nEMO speakers and every other recording (LibriSpeech, LibriVox, the speech
folder) test; no speaker is in two splits.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SPLITS", "RealSpeech", "real_speech"]

SPLITS = ("train", "val", "test")
_RAVDESS_VAL = range(15, 17)
_RAVDESS_TEST = range(17, 21)
_NEMO_VAL = {"MK0"}
_NEMO_TEST = {"SM0", "TP0", "WR0"}
_OTHER = ("librispeech", "librivox", "speech")


@dataclass(frozen=True)
class RealSpeech:
    """One real recording used as a negative.

    Attributes:
        path: the audio file.
        corpus: ``ravdess``, ``nemo``, ``librispeech``, ``librivox`` or ``speech``.
        speaker: the corpus's speaker id.
        split: ``train``, ``val`` or ``test``.
    """

    path: Path
    corpus: str
    speaker: str
    split: str


def _ravdess(root: Path) -> list[RealSpeech]:
    items = []
    for path in sorted((root / "ravdess").glob("Actor_*/*.flac")):
        actor = int(path.parent.name.split("_")[1])
        split = "test" if actor in _RAVDESS_TEST else "val" if actor in _RAVDESS_VAL else "train"
        items.append(RealSpeech(path, "ravdess", f"{actor:02d}", split))
    return items


def _nemo(root: Path) -> list[RealSpeech]:
    table = root / "nemo" / "data.tsv"
    if not table.exists():
        return []
    items = []
    with table.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            speaker = row["speaker_id"]
            split = "test" if speaker in _NEMO_TEST else "val" if speaker in _NEMO_VAL else "train"
            items.append(
                RealSpeech(root / "nemo" / "samples" / row["file_id"], "nemo", speaker, split)
            )
    return [i for i in items if i.path.exists()]


def _others(root: Path) -> list[RealSpeech]:
    items = []
    for corpus in _OTHER:
        for path in sorted((root / corpus).glob("*")):
            if path.suffix in {".flac", ".wav", ".mp3"}:
                items.append(RealSpeech(path, corpus, path.stem, "test"))
    return items


def real_speech(root: Path) -> list[RealSpeech]:
    """The real recordings under the shared data folder ``root``, each with its split."""
    return _ravdess(root) + _nemo(root) + _others(root)
