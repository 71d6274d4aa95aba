"""Do weight-averaged soups of emotion heads beat their members? Evaluated with the product's
numpy runtime on the recipe's speaker-disjoint and cross-corpus folds.

Inputs: the ``fits-NAME-K.npz`` files that ``research/train_emotion_device.py --save-models``
writes, one NAME per soup member (members share ``seed`` and differ in ``member``), and the packed
clips (``scripts/pack_emotion_corpus.py``). For every evaluation group it scores each member
alone, the logit average of the members (an ensemble, n times the cost) and their soup
(:func:`emotivoice.training.recipe.soup_arrays`, one member's cost). With ``--export FILE`` it
also writes the soup of the members' final heads, calibrated on the soup of their calibration
heads, as a head file for ``--emotion-model``. With ``--update FILE`` it replaces a head file's
stored evaluations of the groups it scored in full, for a recipe change that leaves the final
and calibration fits, and so the weights, as they are.

    python research/emotion_soup_study.py RUN_DIR [RUN_DIR ...] [--data .emodata] [--export F]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from emotivoice.emotion.head import EmotionHead, own_log_mel
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.metrics import classification_report
from emotivoice.training.config import TrainConfig
from emotivoice.training.fit import fit_temperature, head_extras, soup_arrays, training_speakers
from emotivoice.training.recipe import MODEL_GROUPS, calibration_speakers, recipe_jobs
from emotivoice.training.states import StateSet
from train_emotion_device import load_packed_clips

logger = logging.getLogger("emotion_soup_study")


def load_fits(folder: Path) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    """The member name and its fits (``GROUP.I`` → arrays) in a run folder."""
    files = sorted(folder.glob("fits-*-*.npz"))
    if not files:
        raise SystemExit(f"no fits-NAME-K.npz in {folder}")
    fits: dict[str, dict[str, np.ndarray]] = {}
    for file in files:
        with np.load(file) as arrays:
            for key in arrays.files:
                group, i, name = key.split(".", 2)
                fits.setdefault(f"{group}.{i}", {})[name] = arrays[key]
    return files[0].stem.split("-")[1], fits


def head(arrays: Mapping[str, np.ndarray], config: TrainConfig) -> EmotionHead:
    """A fit's arrays as the runtime's head (uncalibrated)."""
    weights = {k: v for k, v in arrays.items() if k != "logits"}
    extras = head_extras(1.0, {"config": asdict(config), "whisper_model": "base"})
    return EmotionHead(weights | extras, "study")


def logits_of(model: EmotionHead, mels: list[np.ndarray]) -> np.ndarray:
    return np.stack([model.logits(model.prefix_states(m, threads=1)[0]) for m in mels])


_shared: dict[str, Any] = {}  # the workers' inputs (inherited on fork)


def soup_logits(task: tuple[str, tuple[str, ...]]) -> tuple[str, tuple[str, ...], np.ndarray]:
    """Runtime logits of the soup of ``combo``'s fits on ``group``'s test clips (a worker)."""
    group, combo = task
    members, fits, mels = _shared["members"], _shared["groups"][group], _shared["mels"]
    config = _shared["config"]
    out = []
    for key, job in fits:
        model = head(soup_arrays([members[n][key] for n in combo]), config)
        out.append(logits_of(model, [mels[j] for j in np.flatnonzero(job.test)]))
    return group, combo, np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path(".emodata"))
    parser.add_argument("--export", type=Path)
    parser.add_argument(
        "--update",
        type=Path,
        help="head file whose stored evaluations to replace by the groups scored here in full",
    )
    parser.add_argument("--pairs", action="store_true", help="also every pair's soup")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("emotion-soup-study.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    members = dict(load_fits(run) for run in args.runs)
    config = TrainConfig()
    clips = load_packed_clips(args.data)
    started = time.time()
    mels = [own_log_mel(c.samples) for c in clips]
    logger.info("%d log-mels in %.0f s", len(mels), time.time() - started)
    meta = StateSet(
        [np.zeros((1, 1))] * len(clips),
        np.array([BASE_EMOTIONS.index(c.emotion) for c in clips]),
        np.array([c.speaker for c in clips]),
        np.array([c.corpus for c in clips]),
        np.zeros(len(clips), bool),
    )
    names = sorted(members)
    recipe = recipe_jobs(meta)
    # the evaluation fits the members ran (a sweep's --groups may keep only some), by key
    groups = {
        g: [(f"{g}.{i}", job) for i, job in enumerate(jobs) if f"{g}.{i}" in members[names[0]]]
        for g, jobs in recipe.items()
        if g not in MODEL_GROUPS
    }
    groups = {g: fits for g, fits in groups.items() if fits}
    truth = {
        g: np.concatenate([meta.labels[job.test] for _, job in fits]) for g, fits in groups.items()
    }

    def ua(group: str, logits: np.ndarray) -> float:
        return round(classification_report(truth[group], logits.argmax(1), BASE_EMOTIONS)["ua"], 3)

    # each member alone and the ensembles (mean logits) from the device's own test logits
    device = {
        (g, n): np.concatenate([members[n][key]["logits"] for key, _ in fits])
        for g, fits in groups.items()
        for n in names
    }
    for (g, n), logits in device.items():
        if len(logits) != len(truth[g]):
            raise SystemExit(f"{n} {g}: the device tested {len(logits)} clips, not {len(truth[g])}")
    report: dict[str, dict[str, float]] = {}
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            row = report.setdefault("+".join(combo) + (" ensemble" if k > 1 else ""), {})
            for g in groups:
                row[g] = ua(g, np.mean([device[g, n] for n in combo], axis=0))
    # the runtime reproduces the device's predictions (first member, first fit of a group)
    first = next(iter(groups))
    key, job = groups[first][0]
    assert job.test is not None  # an evaluation fit
    check = logits_of(
        head(members[names[0]][key], config), [mels[j] for j in np.flatnonzero(job.test)]
    )
    agree = check.argmax(1) == device[first, names[0]][: len(check)].argmax(1)
    report["runtime agrees with device"] = {key: round(float(agree.mean()), 3)}
    logger.info("runtime agrees with the device on %.3f of a fold", agree.mean())
    soups = [tuple(names)] + (list(itertools.combinations(names, 2)) if args.pairs else [])
    _shared.update(members=members, groups=groups, mels=mels, config=config)
    tasks = [(g, combo) for combo in soups for g in groups]
    details: dict[str, Any] = {}
    with ProcessPoolExecutor(args.workers, multiprocessing.get_context("fork")) as pool:
        for group, combo, logits in pool.map(soup_logits, tasks):
            report.setdefault("+".join(combo) + " soup", {})[group] = ua(group, logits)
            if len(combo) == len(names):  # the soup that --export writes, in full
                details[group] = classification_report(
                    truth[group], logits.argmax(1), BASE_EMOTIONS
                )
            logger.info("soup %s %s UA %.3f", combo, group, ua(group, logits))
            args.out.write_text(json.dumps({**report, "soup details": details}, indent=1))
    if args.export:
        calibration = np.isin(meta.speakers, calibration_speakers(meta))
        calib_head = head(soup_arrays([members[n]["calibration.0"] for n in names]), config)
        held = [mels[j] for j in np.flatnonzero(calibration)]  # the calibration fit's test
        temperature = fit_temperature(logits_of(calib_head, held), meta.labels[calibration])
        souped = soup_arrays([members[n]["final.0"] for n in names])
        souped.pop("logits", None)
        metadata = {
            "config": asdict(replace(config, soup=len(names))),
            "evaluations": details,
            "soup_study": report,
            "temperature": temperature,
            "whisper_model": "base",
            "training_speakers": training_speakers(meta),
        }
        arrays = souped | head_extras(temperature, metadata)
        np.savez(args.export, **arrays)  # type: ignore[arg-type]
        logger.info("soup of %s written to %s (T=%.3f)", names, args.export, temperature)
    if args.update:
        complete = [g for g in details if len(groups[g]) == len(recipe[g])]
        update_evaluations(args.update, {g: details[g] for g in complete}, report, config)


def update_evaluations(
    path: Path,
    evaluations: dict[str, Any],
    report: dict[str, dict[str, float]],
    config: TrainConfig,
) -> None:
    """Replace ``path``'s stored evaluations of some groups, for a recipe change that leaves its
    weights as they are (e.g. ``TrainConfig.min_steps``, which lengthens only fits on a small
    training set: the calibration and final fits train for more steps already). Its metadata
    then records ``config`` (the same soup size) and the members' rows of ``report``."""
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    metadata = json.loads(str(arrays["metadata"]))
    metadata.pop("labels")
    metadata["config"] = asdict(replace(config, soup=metadata["config"]["soup"]))
    metadata["evaluations"] |= evaluations
    for row, figures in report.items():
        kept = {g: ua for g, ua in figures.items() if g in evaluations}
        metadata["soup_study"].setdefault(row, {}).update(kept)
    arrays |= head_extras(float(arrays["temperature"]), metadata)
    np.savez(path, **arrays)
    logger.info("%s: evaluations %s replaced", path, sorted(evaluations))


if __name__ == "__main__":
    main()
