"""Pack RAVDESS + nEMO speech (VAD-cropped, Opus 16 kbps) into one small folder with a manifest.

For training the emotion head on an accelerator machine that cannot see ``../shared/data``:
``python scripts/pack_emotion_corpus.py .emodata`` then carry ``.emodata``. The crop is the
speech span the pipeline's VAD would hand to the encoder (first to last speech, 200 ms padding).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from emotivoice.audio import SAMPLE_RATE, encode_audio
from emotivoice.evaluation.datasets import data_dir
from emotivoice.training.corpora import read_corpus
from emotivoice.training.states import prepare_clips


def _write_opus(samples: np.ndarray, path: Path, bitrate: int = 16000) -> None:
    encode_audio(samples, "ogg", "libopus", rate=48000, bit_rate=bitrate, target=path)


def pack_encoder(target: Path) -> None:
    """The Whisper base encoder variables (int8 rows + scales, as CT2's int8) and mel filters."""
    from emotivoice.models.ct2_reader import read_ct2_model
    from emotivoice.models.registry import resolve_whisper_model
    from emotivoice.models.torch_whisper import mel_filters

    target.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"mel_filters": mel_filters()}
    for name, value in read_ct2_model(resolve_whisper_model("base")).variables.items():
        if not name.startswith("encoder/"):
            continue
        if value.ndim == 2 and name.endswith("/weight"):
            scale = 127.0 / np.maximum(np.abs(value).max(axis=1), 1e-8)
            arrays[name] = np.round(value * scale[:, None]).astype(np.int8)
            arrays[name + "_scale"] = scale.astype(np.float32)
        else:
            arrays[name] = value.astype(np.float16) if value.dtype == np.float32 else value
    np.savez_compressed(target / "encoder.npz", **arrays)  # type: ignore[arg-type]


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    root = data_dir()
    labeled = read_corpus(root / "ravdess", "ravdess") + read_corpus(root / "nemo", "nemo")
    rows = []
    for index, clip in enumerate(prepare_clips(labeled)):
        name = f"{index:05d}.opus"
        _write_opus(clip.samples.astype(np.float32), target / name)
        rows.append(
            {
                "file": name,
                "emotion": clip.emotion,
                "speaker": clip.speaker,
                "corpus": clip.corpus,
                "seconds": round(len(clip.samples) / SAMPLE_RATE, 3),
            }
        )
    with (target / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--encoder"]:
        pack_encoder(Path(sys.argv[2] if len(sys.argv) > 2 else ".emocarry"))
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else ".emodata"))
