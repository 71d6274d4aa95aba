"""The robustness lab: attack a set of utterances, score them, write audio and reports.

Inputs are a CSV with columns ``file`` and ``target`` (optionally ``text``, the reference
transcript), its files relative to the CSV's folder or to ``audio_dir``, or a directory of audio
files attacked toward one target. Every input is checked before the first attack step, so a bad
row fails in seconds rather than after an hour.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import AudioTooLongError, InvalidConfigError, InvalidTargetError
from emotivoice.robustness.attack import (
    MAX_SAMPLES,
    AttackOptions,
    AttackResult,
    resolve_torch_device,
    targeted_attack,
)
from emotivoice.robustness.report import ExampleReport, build_report, distortion, summarize
from emotivoice.robustness.untargeted import UntargetedOptions, untargeted_attack
from emotivoice.robustness.whisper_loss import validate_target

__all__ = [
    "AttackItem",
    "LabOptions",
    "load_attack_csv",
    "load_attack_dir",
    "load_items",
    "run_lab",
    "score_examples",
    "transcribe_with",
    "write_outputs",
]

logger = logging.getLogger(__name__)

TRANSFER_MODELS = ("base-int8", "tiny.en")


@dataclass(frozen=True, eq=False)
class AttackItem:
    """One utterance to attack.

    Attributes:
        path: the audio file.
        target: the phrase to inject (empty for untargeted attacks).
        reference: the reference transcript, when known.
        samples: 16 kHz mono float32 audio (at most 30 s).
        sample_rate: the file's original sample rate.
    """

    path: Path
    target: str
    reference: str | None
    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class LabOptions:
    """What :func:`run_lab` does.

    Attributes:
        mode: ``targeted`` or ``untargeted``.
        model: the attacked Whisper (its PyTorch copy).
        targeted: options of the targeted attack.
        untargeted: options of the untargeted PGD baseline.
        transfer: models that transcribe the adversarial audio as well: ``base-int8`` (the fast
            CTranslate2 runtime of Whisper base, int8) and/or ``tiny.en``.
        transfer_beam_size: beam width of those transcriptions (5: the product's default).
    """

    mode: str = "targeted"
    model: str = "base"
    targeted: AttackOptions = field(default_factory=AttackOptions)
    untargeted: UntargetedOptions = field(default_factory=UntargetedOptions)
    transfer: tuple[str, ...] = TRANSFER_MODELS
    transfer_beam_size: int = 5

    def __post_init__(self) -> None:
        if self.mode not in ("targeted", "untargeted"):
            raise InvalidConfigError(f"Unknown mode {self.mode!r}; choose targeted or untargeted.")
        unknown = [m for m in self.transfer if m not in TRANSFER_MODELS]
        if unknown:
            raise InvalidConfigError(
                f"Unknown transfer models {unknown}; available: {', '.join(TRANSFER_MODELS)}."
            )


def load_items(
    entries: Sequence[tuple[Path, str, str | None]], *, targeted: bool = True
) -> list[AttackItem]:
    """Decode and check ``(path, target, reference)`` entries; raise on the first bad one."""
    by_stem: dict[str, list[Path]] = {}
    for path, _, _ in entries:
        by_stem.setdefault(path.stem, []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) > 1:  # outputs are named after the stem
            raise InvalidConfigError(
                f"{', '.join(str(p) for p in paths)}: share the name {stem!r}, so their outputs "
                "would overwrite each other; rename all but one."
            )
    items = []
    for path, target, reference in entries:
        if targeted:
            try:
                target = validate_target(target)
            except InvalidTargetError as error:
                raise InvalidTargetError(f"{path.name}: {error.message}") from error
        from emotivoice.audio import load_audio  # PyAV: not needed to attack arrays

        audio = load_audio(path)
        if audio.samples.size > MAX_SAMPLES:
            raise AudioTooLongError(
                f"{path.name}: lasts {audio.duration:.1f} s; attacks work on one Whisper window "
                "(at most 30 s). Cut it first."
            )
        items.append(AttackItem(path, target, reference, audio.samples, audio.info.sample_rate))
    return items


def load_attack_csv(
    csv_path: Path, audio_dir: Path | None = None, *, targeted: bool = True
) -> list[AttackItem]:
    """Items from a CSV with columns ``file``, ``target`` (and optionally ``text``)."""
    if not csv_path.is_file():
        raise InvalidConfigError(f"{csv_path}: CSV file not found.")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        needed = {"file", "target"} if targeted else {"file"}
        if not needed <= columns:
            raise InvalidConfigError(
                f"{csv_path}: needs the columns {sorted(needed)}; found {sorted(columns)}."
            )
        rows = list(reader)
    if not rows:
        raise InvalidConfigError(f"{csv_path}: has no rows to attack.")
    folder = audio_dir or csv_path.parent
    entries = [
        (folder / row["file"], row.get("target") or "", row.get("text") or None) for row in rows
    ]
    return load_items(entries, targeted=targeted)


def load_attack_dir(folder: Path, target: str = "", *, targeted: bool = True) -> list[AttackItem]:
    """Every audio file under ``folder`` (recursively, by extension), each toward ``target``.

    Raises:
        InvalidConfigError: ``folder`` is not a directory or holds no audio file.
    """
    from emotivoice.audio import AUDIO_EXTENSIONS, find_audio_files

    if not folder.is_dir():
        raise InvalidConfigError(f"{folder}: directory not found.")
    files = find_audio_files(folder)
    if not files:
        looked_for = ", ".join(f".{ext}" for ext in sorted(AUDIO_EXTENSIONS))
        raise InvalidConfigError(
            f"{folder}: no audio files to attack (searched it and its folders for {looked_for})."
        )
    return load_items([(path, target, None) for path in files], targeted=targeted)


def transcribe_with(model: str, beam_size: int = 5) -> Callable[[np.ndarray], str]:
    """A transcriber on the fast CTranslate2 runtime (CPU): ``base-int8`` or ``tiny.en``."""
    from emotivoice.models.whisper import load_model

    name, compute = ("base", "int8") if model == "base-int8" else (model, "int8")
    whisper = load_model(name, device="cpu", compute_type=compute)

    def transcribe(samples: np.ndarray) -> str:
        segments, _ = whisper.transcribe(
            np.asarray(samples, np.float32),
            language="en",
            beam_size=beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    return transcribe


def score_examples(
    items: Sequence[AttackItem],
    results: Sequence[AttackResult],
    attacked: Callable[[np.ndarray], str],
    transfer: dict[str, Callable[[np.ndarray], str]],
    device: str,
) -> list[ExampleReport]:
    """Reports for attacked items: transcripts by the attacked and transfer models, metrics."""
    from tqdm import tqdm

    reports = []
    for item, result in tqdm(
        list(zip(items, results, strict=True)),
        desc="scoring",
        disable=True if len(items) < 2 else None,  # None: a terminal only
    ):
        clean_text = attacked(item.samples)
        reports.append(
            build_report(
                file=item.path.name,
                kind=result.kind,
                goal=result.goal,
                original=item.reference or clean_text,
                clean_transcript=clean_text,
                transcript=attacked(result.adversarial),
                dist=distortion(item.samples, result.adversarial),
                transfer=[(name, fn(result.adversarial)) for name, fn in transfer.items()],
                stage2_applied=result.stage2_applied,
                stage1_success_step=result.stage1_success_step,
                linf_bound=result.linf_bound,
                iterations=result.iterations,
                seconds=result.seconds,
                device=device,
            )
        )
    return reports


def run_lab(
    items: Sequence[AttackItem], options: LabOptions | None = None
) -> tuple[list[AttackResult], list[ExampleReport]]:
    """Attack ``items``, then score every example (attacked model, transfer, distortion)."""
    from emotivoice.models.torch_whisper import load_torch_whisper
    from emotivoice.robustness.whisper_loss import greedy_transcripts

    options = options or LabOptions()
    if not items:
        raise InvalidConfigError("Nothing to attack: no input items.")
    attack_options = options.targeted if options.mode == "targeted" else options.untargeted
    device = resolve_torch_device(attack_options.device)
    model = load_torch_whisper(options.model, device=device)
    audio = [item.samples for item in items]
    if options.mode == "targeted":
        results = targeted_attack(model, audio, [i.target for i in items], options.targeted)
    else:
        results = untargeted_attack(model, audio, options.untargeted)

    def attacked(samples: np.ndarray) -> str:
        import torch

        tensor = torch.from_numpy(np.asarray(samples, np.float32)).to(device)
        return greedy_transcripts(model, [tensor], attack_options.language)[0]

    transfer = {m: transcribe_with(m, options.transfer_beam_size) for m in options.transfer}
    return list(results), score_examples(items, results, attacked, transfer, device)


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """32-bit float WAV: integer PCM would round away part of a perturbation this small."""
    from scipy.io import wavfile

    wavfile.write(path, rate, np.asarray(samples, np.float32))


def write_outputs(
    out_dir: Path,
    items: Sequence[AttackItem],
    results: Sequence[AttackResult],
    reports: Sequence[ExampleReport],
) -> dict[str, object]:
    """Write ``<stem>.adv.16k.wav``, ``<stem>.adv.wav`` (original rate), ``<stem>.json``,
    ``summary.json`` and ``summary.md`` (the table) into ``out_dir``."""
    from scipy.signal import resample_poly

    from emotivoice.robustness.report import summary_table

    out_dir.mkdir(parents=True, exist_ok=True)
    for item, result, report in zip(items, results, reports, strict=True):
        stem = item.path.stem
        _write_wav(out_dir / f"{stem}.adv.16k.wav", result.adversarial, SAMPLE_RATE)
        rate = item.sample_rate
        original_rate = (
            result.adversarial
            if rate == SAMPLE_RATE
            else resample_poly(result.adversarial, rate, SAMPLE_RATE)
        )
        _write_wav(out_dir / f"{stem}.adv.wav", original_rate, rate)
        (out_dir / f"{stem}.json").write_text(json.dumps(report.to_dict(), indent=2))
    summary = summarize(reports)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "summary.md").write_text(summary_table(reports) + "\n")
    return summary
