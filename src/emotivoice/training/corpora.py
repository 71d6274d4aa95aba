"""Labelled emotional-speech corpora on disk: RAVDESS, nEMO, CREMA-D, IEMOCAP or a CSV.

Each reader returns :class:`LabeledClip` items with the label mapped onto
:data:`~emotivoice.emotion.labels.BASE_EMOTIONS` and a speaker id for speaker-disjoint folds.
Labels outside the six base emotions are dropped, as documented per layout:

- ``ravdess``: ``03-01-EE-II-SS-RR-AA``; calm (02) → neutral; disgust (07) dropped (no base
  class; mapping it onto anger would teach the model a wrong boundary). Speaker = actor.
- ``nemo``: ``data.tsv`` (``file_id, emotion, ..., speaker_id``), files under ``samples/``;
  ``surprised`` → surprise.
- ``cremad``: ``AudioWAV/1001_DFA_ANG_XX.wav``; ANG, FEA, HAP, NEU, SAD (no surprise; DIS dropped).
- ``iemocap``: ``Session*/sentences/wav/*/*.wav`` with labels from
  ``Session*/dialog/EmoEvaluation/*.txt``; ang, fea, hap+exc → happiness, neu, sad, sur.
- ``csv``: a ``labels.csv`` with columns ``path, emotion, speaker`` (paths relative to it).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError

LAYOUTS = ("ravdess", "nemo", "cremad", "iemocap", "csv")

_RAVDESS = {"01": "neutral", "02": "neutral", "03": "happiness", "04": "sadness"}
_RAVDESS |= {"05": "anger", "06": "fear", "08": "surprise"}
_NEMO = {"anger": "anger", "fear": "fear", "happiness": "happiness", "neutral": "neutral"}
_NEMO |= {"sadness": "sadness", "surprised": "surprise", "surprise": "surprise"}
_CREMAD = {"ANG": "anger", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness"}
_IEMOCAP = {"ang": "anger", "fea": "fear", "hap": "happiness", "exc": "happiness"}
_IEMOCAP |= {"neu": "neutral", "sad": "sadness", "sur": "surprise"}
_ALIASES = {"angry": "anger", "fearful": "fear", "happy": "happiness", "sad": "sadness"}
_ALIASES |= {"surprised": "surprise", "calm": "neutral"}


@dataclass(frozen=True)
class LabeledClip:
    """One recording with its base-emotion label and speaker."""

    path: Path
    emotion: str
    speaker: str
    corpus: str


def _ravdess(root: Path) -> list[LabeledClip]:
    clips = []
    for path in sorted(root.glob("**/03-*-*-*-*-*-*.*")):
        parts = path.stem.split("-")
        emotion = _RAVDESS.get(parts[2])
        if emotion is not None and path.suffix.lower() in {".wav", ".flac", ".mp3", ".opus"}:
            clips.append(LabeledClip(path, emotion, f"ravdess-{parts[6]}", "ravdess"))
    return clips


def _nemo(root: Path) -> list[LabeledClip]:
    table = root / "data.tsv"
    if not table.exists():
        raise InvalidConfigError(f"{root} has no data.tsv (nEMO layout)")
    clips = []
    with table.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            emotion = _NEMO.get(row["emotion"])
            path = root / "samples" / row["file_id"]
            if emotion is not None and path.exists():
                clips.append(LabeledClip(path, emotion, f"nemo-{row['speaker_id']}", "nemo"))
    return clips


def _cremad(root: Path) -> list[LabeledClip]:
    clips = []
    for path in sorted(root.glob("**/*_*_*_*.wav")):
        speaker, _, code, _ = path.stem.split("_")
        if code in _CREMAD:
            clips.append(LabeledClip(path, _CREMAD[code], f"cremad-{speaker}", "cremad"))
    return clips


def _iemocap(root: Path) -> list[LabeledClip]:
    labels: dict[str, str] = {}
    pattern = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(\S+)\t(\w+)\t")
    for file in root.glob("Session*/dialog/EmoEvaluation/*.txt"):
        for line in file.read_text(errors="replace").splitlines():
            match = pattern.match(line)
            if match and match.group(2) in _IEMOCAP:
                labels[match.group(1)] = _IEMOCAP[match.group(2)]
    clips = []
    for path in sorted(root.glob("Session*/sentences/wav/*/*.wav")):
        if path.stem in labels:
            speaker = path.stem[:5] + path.stem.split("_")[-1][0]  # session + gender of speaker
            clips.append(LabeledClip(path, labels[path.stem], f"iemocap-{speaker}", "iemocap"))
    return clips


def _csv(root: Path) -> list[LabeledClip]:
    table = root / "labels.csv" if root.is_dir() else root
    base = table.parent
    clips = []
    with table.open(encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            try:
                raw, speaker, path = row["emotion"].strip().lower(), row["speaker"], row["path"]
            except KeyError as error:
                raise InvalidConfigError(
                    f"{table}: needs columns path, emotion, speaker (missing {error})"
                ) from None
            emotion = _ALIASES.get(raw, raw)
            if emotion not in BASE_EMOTIONS:
                raise InvalidConfigError(
                    f"{table} line {number}: emotion {raw!r} is not one of "
                    + ", ".join(BASE_EMOTIONS)
                )
            clips.append(LabeledClip(base / path, emotion, str(speaker), "csv"))
    return clips


_READERS: dict[str, Callable[[Path], list[LabeledClip]]] = {
    "ravdess": _ravdess,
    "nemo": _nemo,
    "cremad": _cremad,
    "iemocap": _iemocap,
    "csv": _csv,
}


def read_corpus(root: Path, layout: str) -> list[LabeledClip]:
    """All labelled clips of a corpus in ``layout`` (one of :data:`LAYOUTS`)."""
    if layout not in _READERS:
        raise InvalidConfigError(f"Unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not root.exists():
        raise InvalidConfigError(f"Dataset folder {root} does not exist")
    clips = _READERS[layout](root)
    if not clips:
        raise InvalidConfigError(f"No labelled clips found in {root} for layout {layout!r}")
    return clips
