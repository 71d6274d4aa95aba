"""The shared reference recordings (``../shared/data``) used by tests and benchmarks.

The data stays outside the repository; ``EMOTIVOICE_DATA_DIR`` points at it, defaulting to
``shared/data`` beside the checkout.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from emotivoice.errors import InvalidConfigError

__all__ = ["ReferenceUtterance", "data_dir", "reference_utterances"]

_REFERENCE_SETS = ("librispeech", "librivox")


@dataclass(frozen=True)
class ReferenceUtterance:
    """A recording with its reference transcript."""

    path: Path
    text: str
    corpus: str


def data_dir(explicit: Path | None = None) -> Path:
    """Locate the shared data directory (argument, ``EMOTIVOICE_DATA_DIR``, or beside the repo)."""
    candidates = [explicit] if explicit else []
    if os.environ.get("EMOTIVOICE_DATA_DIR"):
        candidates.append(Path(os.environ["EMOTIVOICE_DATA_DIR"]))
    repo_root = Path(__file__).resolve().parents[3]
    candidates += [repo_root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if path is not None and path.is_dir():
            return path
    raise InvalidConfigError(
        "Shared speech data not found; set EMOTIVOICE_DATA_DIR to the folder holding "
        "librispeech/ and librivox/."
    )


def reference_utterances(root: Path | None = None) -> list[ReferenceUtterance]:
    """The 15 reference utterances: 10 LibriSpeech test-clean + 5 LibriVox, with transcripts."""
    base = data_dir(root)
    items: list[ReferenceUtterance] = []
    for corpus in _REFERENCE_SETS:
        with (base / corpus / "transcripts.csv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                items.append(ReferenceUtterance(base / corpus / row["file"], row["text"], corpus))
    return items
