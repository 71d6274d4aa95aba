"""Convert Resemblyzer's GE2E speaker encoder to the numpy weights EmotiVoice ships.

Resemblyzer 0.1.4 (Apache-2.0) carries ``pretrained.pt`` (a PyTorch pickle of the voice encoder
and its optimiser state, 17 MB) inside its PyPI wheel. EmotiVoice runs the encoder in numpy
(:mod:`emotivoice.diarization.embedding`), so this script keeps only the network's weights, as
float16, plus the 40-band mel filterbank the encoder was trained with (librosa's, slaney), in
``src/emotivoice/diarization/weights/ge2e-resemblyzer.npz``.

Run it once where the wheel can be fetched (``pip download resemblyzer==0.1.4 --no-deps``):

    python scripts/convert_speaker_encoder.py Resemblyzer-0.1.4-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import librosa
import numpy as np
import torch

OUT = Path("src/emotivoice/diarization/weights/ge2e-resemblyzer.npz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", type=Path, help="the Resemblyzer 0.1.4 wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        raw = wheel.read("resemblyzer/pretrained.pt")
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)["model_state"]
    arrays = {
        name.replace(".", "_"): tensor.numpy().astype(np.float16)
        for name, tensor in state.items()
        if name.startswith(("lstm.", "linear."))
    }
    arrays["mel_basis"] = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40).astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"pretrained.pt sha256 {hashlib.sha256(raw).hexdigest()}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {sorted(arrays)}")


if __name__ == "__main__":
    main()
