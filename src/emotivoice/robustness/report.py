"""What an adversarial example achieves: success, distortion, perceptual quality, transfer.

Success is judged on normalised text (Whisper's English normaliser), so a targeted example
succeeds exactly when its word error rate against the target is 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.extras import require_extra
from emotivoice.metrics import character_error_rate, normalize_text, word_error_rate
from emotivoice.robustness.masking import PSD_PEAK_DB, _stft_power, masking_threshold

__all__ = [
    "Distortion",
    "ExampleReport",
    "Transfer",
    "distortion",
    "same_words",
    "summarize",
    "summary_table",
]

_TINY = 1e-12


def _require_perceptual() -> tuple[Any, Any]:
    require_extra("robustness", "PESQ and STOI")
    from pesq import pesq
    from pystoi import stoi

    return pesq, stoi


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts are the same words after normalisation."""
    return normalize_text(a).split() == normalize_text(b).split()


@dataclass(frozen=True)
class Distortion:
    """How far an adversarial example is from the clean audio.

    Attributes:
        snr_db: 10·log10(‖x‖² / ‖δ‖²).
        db_x: dB_x(δ) − dB_x(x), with dB_x(v) = 20·log10 max|v| (Carlini & Wagner; lower is
            quieter).
        pesq: wide-band PESQ (1-4.6; ``None`` when PESQ cannot score the pair).
        stoi: short-time objective intelligibility (0-1).
        frames_above_threshold: share of psychoacoustic frames where the perturbation exceeds
            the masking threshold in at least one bin.
        bins_above_threshold: share of all (frame, bin) cells above the threshold.
    """

    snr_db: float
    db_x: float
    pesq: float | None
    stoi: float
    frames_above_threshold: float
    bins_above_threshold: float


def distortion(clean: np.ndarray, adversarial: np.ndarray) -> Distortion:
    """Distortion figures of ``adversarial`` against ``clean`` (16 kHz float samples)."""
    pesq, stoi = _require_perceptual()
    clean = np.asarray(clean, np.float64)
    delta = np.asarray(adversarial, np.float64) - clean
    energy = max(float(np.sum(delta**2)), _TINY)
    snr = 10.0 * np.log10(max(float(np.sum(clean**2)), _TINY) / energy)
    db_x = 20.0 * np.log10(max(np.abs(delta).max(), _TINY) / max(np.abs(clean).max(), _TINY))
    try:
        quality: float | None = float(pesq(SAMPLE_RATE, clean, clean + delta, "wb"))
    except Exception:  # pesq raises its own errors for silent or too-short input
        quality = None
    intelligibility = float(stoi(clean, clean + delta, SAMPLE_RATE, extended=False))
    masking = masking_threshold(clean)
    psd = _stft_power(delta) * 10 ** (PSD_PEAK_DB / 10.0) / masking.psd_max
    above = psd[: masking.threshold.shape[0]] > masking.threshold
    return Distortion(
        snr_db=float(snr),
        db_x=float(db_x),
        pesq=quality,
        stoi=intelligibility,
        frames_above_threshold=float(above.any(axis=1).mean()),
        bins_above_threshold=float(above.mean()),
    )


@dataclass(frozen=True)
class Transfer:
    """What another model transcribes from the adversarial audio."""

    model: str
    transcript: str
    reaches_goal: bool
    wer_to_goal: float


@dataclass(frozen=True)
class ExampleReport:
    """One adversarial example, as written to ``<name>.json``.

    Attributes:
        file: the input file's name.
        kind: ``targeted`` or ``untargeted``.
        target: the phrase the example should be transcribed as (targeted), else empty.
        original: the reference transcript (from the CSV) or the clean transcript.
        clean_transcript: what the attacked model transcribes from the clean audio.
        transcript: what the attacked model transcribes from the adversarial audio.
        success: targeted: ``transcript`` equals ``target`` after normalisation (⇔
            ``wer_to_target == 0``); untargeted: it differs from ``clean_transcript``.
        wer_to_target, cer_to_target: error rates of ``transcript`` against the target.
        wer_to_original, cer_to_original: error rates against ``original``.
        distortion: SNR, dB_x, PESQ, STOI and masking figures.
        stage2_applied: the returned audio comes from stage 2 (masking threshold).
        stage1_success_step: first step the goal was reached.
        linf_bound: L∞ size of the perturbation (targeted) or its L2 budget (untargeted).
        iterations: optimisation steps.
        seconds: attack wall time per example.
        device: where the attack ran.
        transfer: what other models transcribe.
    """

    file: str
    kind: str
    target: str
    original: str
    clean_transcript: str
    transcript: str
    success: bool
    wer_to_target: float
    cer_to_target: float
    wer_to_original: float
    cer_to_original: float
    distortion: Distortion
    stage2_applied: bool
    stage1_success_step: int | None
    linf_bound: float
    iterations: int
    seconds: float
    device: str
    transfer: tuple[Transfer, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (nested dataclasses as objects, transfer as a list)."""
        data = asdict(self)
        data["transfer"] = [asdict(t) for t in self.transfer]
        return data


def build_report(
    *,
    file: str,
    kind: str,
    goal: str,
    original: str,
    clean_transcript: str,
    transcript: str,
    dist: Distortion,
    transfer: Sequence[tuple[str, str]],
    **attack: Any,
) -> ExampleReport:
    """Assemble a report; success and error rates are derived here, in one place."""
    targeted = kind == "targeted"
    target = goal if targeted else ""

    def reaches(text: str) -> bool:
        return same_words(text, goal) if targeted else not same_words(text, clean_transcript)

    def wer_to_goal(text: str) -> float:
        return word_error_rate([goal], [text])

    return ExampleReport(
        file=file,
        kind=kind,
        target=target,
        original=original,
        clean_transcript=clean_transcript,
        transcript=transcript,
        success=reaches(transcript),
        wer_to_target=word_error_rate([target], [transcript]) if targeted else float("nan"),
        cer_to_target=character_error_rate([target], [transcript]) if targeted else float("nan"),
        wer_to_original=word_error_rate([original], [transcript]),
        cer_to_original=character_error_rate([original], [transcript]),
        distortion=dist,
        transfer=tuple(
            Transfer(
                model=name,
                transcript=text,
                reaches_goal=reaches(text),
                wer_to_goal=wer_to_goal(text),
            )
            for name, text in transfer
        ),
        **attack,
    )


def _median(values: Sequence[float | None]) -> float:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(statistics.median(kept)) if kept else float("nan")


def summarize(reports: Sequence[ExampleReport]) -> dict[str, Any]:
    """Set-level figures: success rate, medians of distortion, time, transfer counts."""
    if not reports:
        return {"examples": 0}
    models = sorted({t.model for r in reports for t in r.transfer})
    return {
        "examples": len(reports),
        "success_rate": sum(r.success for r in reports) / len(reports),
        "stage2_applied": sum(r.stage2_applied for r in reports),
        "median_snr_db": _median([r.distortion.snr_db for r in reports]),
        "median_db_x": _median([r.distortion.db_x for r in reports]),
        "median_pesq": _median([r.distortion.pesq for r in reports]),
        "median_stoi": _median([r.distortion.stoi for r in reports]),
        "median_frames_above_threshold": _median(
            [r.distortion.frames_above_threshold for r in reports]
        ),
        "mean_seconds_per_example": float(np.mean([r.seconds for r in reports])),
        "transfer": {
            m: sum(t.reaches_goal for r in reports for t in r.transfer if t.model == m)
            for m in models
        },
    }


def summary_table(reports: Sequence[ExampleReport]) -> str:
    """A Markdown table, one row per example, then the set's summary line."""

    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"

    models = sorted({t.model for r in reports for t in r.transfer})
    head = ["file", "success", "WER→target", "SNR dB", "dB_x", "PESQ", "STOI", "frames>th"]
    head += [f"→ {m}" for m in models] + ["steps", "s/example"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        hits = {t.model: ("yes" if t.reaches_goal else "no") for t in r.transfer}
        d = r.distortion
        cells = [
            r.file,
            "yes" if r.success else "no",
            fmt(r.wer_to_target),
            fmt(d.snr_db, 1),
            fmt(d.db_x, 1),
            fmt(d.pesq),
            fmt(d.stoi),
            fmt(d.frames_above_threshold),
            *[hits.get(m, "-") for m in models],
            str(r.iterations),
            fmt(r.seconds, 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    s = summarize(reports)
    transfer = ", ".join(f"{m} {n}/{s['examples']}" for m, n in s.get("transfer", {}).items())
    lines.append(
        f"\n{s['examples']} examples: success {s['success_rate']:.0%}, median SNR "
        f"{fmt(s['median_snr_db'], 1)} dB, PESQ {fmt(s['median_pesq'])}, STOI "
        f"{fmt(s['median_stoi'])}, {fmt(s['mean_seconds_per_example'], 1)} s per example"
        + (f"; transfer: {transfer}" if transfer else "")
    )
    return "\n".join(lines)
