"""Train the default emotion head on an accelerator machine from packed data.

Inputs (carried): ``.emodata/`` (``scripts/pack_emotion_corpus.py``) and ``.emocarry/encoder.npz``
(``pack_emotion_corpus.py --encoder``). Writes ``emotion-head.npz`` and ``emotion-report.json``
to the folder given as the first argument. Same recipe as ``emotivoice train-emotion``, which
reads the corpora directly and runs anywhere; this entry point only avoids decoding and
VAD-cropping on a machine without the shared data.

The shipped model is a soup of three fits (``TrainConfig.soup``); run as one recipe, each of the
eleven trainings fits its three members in turn (on an H200 about 20 minutes, three times the
trainings of one fit: more than one device call allows). It was made in three calls instead, one
member each, each running the eleven trainings side by side::

    echo '{"m0": {"soup": 1, "member": 0}}' > .emocarry/sweep.json   # then m1, m2
    python research/train_emotion_device.py OUT_m0 --sweep .emocarry/sweep.json \\
        --final --save-models

and ``research/emotion_soup_study.py OUT_m0 OUT_m1 OUT_m2 --export head.npz`` then scores every
member, their ensembles and soups, and writes the calibrated soup of the final fits.

A sweep also scores soups itself: variants named ``FAMILY.K`` (differing in ``member``) are
members of one soup, whose UA is reported as ``FAMILY soup`` as soon as all their fits of an
evaluation are done; ``--groups`` keeps only some evaluations, e.g. the cheap RAVDESS → nEMO fit::

    {"e40.0": {"soup": 1, "member": 0, "epochs": 40},
     "e40.1": {"soup": 1, "member": 1, "epochs": 40}}
    python research/train_emotion_device.py OUT --sweep s.json --groups cross_ravdess_to_nemo
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing
import pickle
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotivoice.models.torch_whisper import encoder_from_ct2_variables, load_packed_variables
from emotivoice.training.config import TrainConfig
from emotivoice.training.fit import FitJob, held_out_logits, run_fit_job, soup_module
from emotivoice.training.recipe import (
    MODEL_GROUPS,
    JobRunner,
    pooled_report,
    recipe_jobs,
    recipe_result,
    run_recipe,
)
from emotivoice.training.states import Clip, StateSet, build_state_set


def _load(path: str) -> np.ndarray | None:
    import soundfile
    from scipy.signal import resample_poly

    try:
        samples, rate = soundfile.read(path, dtype="float32")
    except soundfile.LibsndfileError:  # libsndfile rejects a few very short Ogg Opus files
        return None
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return resample_poly(samples, 16000, rate).astype(np.float32) if rate != 16000 else samples


def load_packed_clips(data: Path) -> list[Clip]:
    """Clips of a ``pack_emotion_corpus.py`` folder (unreadable ones skipped)."""
    rows = list(csv.DictReader((data / "manifest.csv").open()))
    with ProcessPoolExecutor(16) as pool:
        waves = list(pool.map(_load, [str(data / r["file"]) for r in rows], chunksize=64))
    return [
        Clip(w, r["emotion"], r["speaker"], r["corpus"])
        for w, r in zip(waves, rows, strict=True)
        if w is not None
    ]


_worker: dict[str, Any] = {}
STATE_FIELDS = ("augment_copies", "seed")  # TrainConfig fields the training data depends on
MAX_WORKERS = 20  # processes of a sweep (each holds the data and ~6 GB of GPU memory: 32 ran out)


def _init_worker(path: str, device: str) -> None:
    import torch

    torch.set_num_threads(1)
    with open(path, "rb") as f:
        _worker.update(data=pickle.load(f), device=device)


def _run_task(task: tuple[TrainConfig, FitJob]) -> tuple[Any, float]:
    started = time.time()
    config, job = task
    return run_fit_job(_worker["data"], job, config, _worker["device"]), time.time() - started


def _pool(data: StateSet, device: str, workers: int) -> ProcessPoolExecutor:
    """Processes that each hold ``data`` and run fit tasks on the one GPU: side by side they
    overlap one another's Python and data work and keep an H200 100 % busy."""
    path = "/tmp/emotion-states.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=5)
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, context, _init_worker, (path, device))


def parallel_runner(data: StateSet, config: TrainConfig, device: str) -> JobRunner:
    """Run the recipe's fit jobs in one process each, all at once."""

    def run(jobs: Sequence[FitJob]) -> list[Any]:
        with _pool(data, device, len(jobs)) as pool:
            return [result for result, _ in pool.map(_run_task, [(config, j) for j in jobs])]

    return run


def family(name: str) -> str:
    """The soup a sweep variant belongs to: variants named ``FAMILY.K`` are its members (they
    should differ in ``member`` only)."""
    return name.split(".")[0]


def soup_report(
    data: StateSet,
    jobs: Sequence[FitJob],
    members: Sequence[Sequence[Any]],
    config: TrainConfig,
    device: str,
) -> dict[str, Any]:
    """Pooled report of the soups (:func:`soup_arrays`) of the members' fits of ``jobs``, each
    soup run by PyTorch on the device like the members (``research/emotion_soup_study.py`` scores
    soups with the numpy runtime)."""
    results = []
    for i, job in enumerate(jobs):
        assert job.test is not None  # an evaluation fit
        module = soup_module([fits[i][1] for fits in members], data, config).to(device)
        results.append((held_out_logits(module, data, job.test, device), None))
    return pooled_report(data, jobs, results)


def sweep(
    data: StateSet,
    base: TrainConfig,
    variants: dict[str, dict[str, Any]],
    device: str,
    out: Path,
    final: bool = False,
    save_models: bool = False,
    only: Sequence[str] = (),
) -> None:
    """Evaluate recipe variants (``TrainConfig`` overrides by name) side by side: all their fits
    run at once. ``out/sweep.json`` is rewritten as each evaluation completes, so that a run cut
    short still reports the finished ones; with ``final``, each variant's calibrated model is
    saved as ``out/emotion-head-NAME.npz`` once its fits are all done; with ``save_models``, every
    fit's head and test logits too (``out/fits-NAME-K.npz``, keys ``GROUP.I.ARRAY``; e.g. to
    average members' weights, ``research/emotion_soup_study.py``). Variants named ``FAMILY.K``
    are soup members: once all of a family's fits of an evaluation are done, the soup's UA is
    reported as ``FAMILY soup``. ``only`` restricts the evaluations to those groups, or to single
    fits of a group named ``GROUP.I`` (e.g. ``ravdess_speaker_disjoint.0``: the first fold)."""
    configs = {name: replace(base, **overrides) for name, overrides in variants.items()}
    groups = recipe_jobs(data, final=final)  # the same fits for every variant
    # each kept fit's index in its group (``--groups`` takes whole groups or fits as GROUP.I)
    kept = {
        g: [i for i in range(len(jobs)) if not only or {g, f"{g}.{i}"} & {*only, *MODEL_GROUPS}]
        for g, jobs in groups.items()
    }
    groups = {g: [groups[g][i] for i in kept[g]] for g in groups if kept[g]}
    families: dict[str, list[str]] = {}
    for name in variants:
        families.setdefault(family(name), []).append(name)
    soups = {f: names for f, names in families.items() if len(names) > 1}
    if save_models or soups:
        groups = {g: [replace(job, export=True) for job in jobs] for g, jobs in groups.items()}
    tasks = [
        (name, group, i)
        for name in variants
        for group, jobs in groups.items()
        for i in range(len(jobs))
    ]
    results: dict[str, dict[str, list[Any]]] = {name: {} for name in variants}
    report: dict[str, Any] = {name: {"overrides": variants[name], "ua": {}} for name in variants}
    out.mkdir(parents=True, exist_ok=True)
    with _pool(data, device, min(len(tasks), MAX_WORKERS)) as pool:
        futures = {
            pool.submit(_run_task, (configs[name], groups[group][i])): (name, group, i)
            for name, group, i in tasks
        }
        for future in as_completed(futures):
            name, group, i = futures[future]
            try:
                result, seconds = future.result()
            except Exception:  # one failed variant does not lose the others
                logging.exception("%s %s fit %d failed", name, group, i)
                continue
            logging.info("%s %s fit %d done in %.0f s", name, group, i, seconds)
            done = results[name].setdefault(group, [None] * len(groups[group]))
            done[i] = result
            if any(r is None for r in done):
                continue
            if group not in MODEL_GROUPS:
                ua = pooled_report(data, groups[group], done)["ua"]
                report[name]["ua"][group] = round(ua, 3)
                logging.info("variant %s: %s UA %.3f", name, group, ua)
                members = soups.get(family(name), [])
                fits = [results[n].get(group, [None]) for n in members]
                if members and all(r is not None for f in fits for r in f):
                    ua = soup_report(data, groups[group], fits, configs[name], device)["ua"]
                    report.setdefault(f"{family(name)} soup", {})[group] = round(ua, 3)
                    logging.info("soup %s: %s UA %.3f", family(name), group, ua)
            if len(results[name]) == len(groups):
                recipe = recipe_result(data, configs[name], groups, results[name])
                if recipe.arrays:
                    np.savez(out / f"emotion-head-{name}.npz", **recipe.arrays)  # type: ignore[arg-type]
                    report[name]["temperature"] = float(recipe.arrays["temperature"])
                report[name]["evaluations"] = recipe.evaluations
                if save_models:
                    save_fits(out, name, results[name], kept)
            (out / "sweep.json").write_text(json.dumps(report, indent=1))


def save_fits(
    out: Path,
    name: str,
    results: dict[str, list[Any]],
    kept: dict[str, list[int]],
    per_file: int = 4,
) -> None:
    """Every fit's exported arrays and test logits, keyed ``GROUP.I`` by the fit's index in the
    whole recipe (``kept``), ``per_file`` fits a file (the device returns files of up to 16 MiB)."""
    fits = [
        (f"{group}.{kept[group][k]}", fit)
        for group, done in results.items()
        for k, fit in enumerate(done)
    ]
    for k in range(0, len(fits), per_file):
        arrays: dict[str, np.ndarray] = {}
        for key, (logits, state) in fits[k : k + per_file]:
            arrays |= {f"{key}.{n}": v for n, v in (state or {}).items()}
            if logits is not None:
                arrays[f"{key}.logits"] = logits
        np.savez(out / f"fits-{name}-{k // per_file}.npz", **arrays)  # type: ignore[arg-type]


def main(
    out: Path,
    data: Path = Path(".emodata"),
    carry: Path = Path(".emocarry"),
    device: str = "cuda",
    quick: bool = False,
    variants: dict[str, dict[str, Any]] | None = None,
    final: bool = False,
    save_models: bool = False,
    only: Sequence[str] = (),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.time()
    clips = load_packed_clips(data)
    logging.info("decoded %d clips in %.0f s", len(clips), time.time() - started)
    variables, filters = load_packed_variables(carry / "encoder.npz")
    config = TrainConfig(epochs=2, augment_copies=1, min_steps=0) if quick else TrainConfig()
    if variants:  # the states are built once: variants share their augmentation settings
        shared = {k: v for k, v in next(iter(variants.values())).items() if k in STATE_FIELDS}
        if any({k: o.get(k) for k in shared} != shared for o in variants.values()):
            raise SystemExit(f"sweep variants must agree on {STATE_FIELDS}")
        config = replace(config, **shared)
    # the transformers encoder computes frozen states; a fine-tuned prefix reads log-mels only
    encoder = None
    if not config.adapter_rank:
        encoder = encoder_from_ct2_variables(variables).to(device)
    states = build_state_set(encoder, filters, clips, config, device, variables)
    logging.info("states of %d copies after %.0f s", len(states.labels), time.time() - started)
    if variants:
        sweep(states, config, variants, device, out, final, save_models, only)
        return
    runner = parallel_runner(states, config, device) if device == "cuda" else None
    folds = (2, 2) if quick else (4, 3)
    result = run_recipe(states, config, device, *folds, runner=runner)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "emotion-head.npz", **result.arrays)  # type: ignore[arg-type]
    summary = result.summary() | {"seconds": round(time.time() - started, 1)}
    (out / "emotion-report.json").write_text(json.dumps(summary, indent=1))
    for name, report in result.evaluations.items():
        logging.info(
            "%s: UA %.3f acc %.3f F1 %.3f",
            name,
            report["ua"],
            report["accuracy"],
            report["macro_f1"],
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the head, reports and fits")
    parser.add_argument("data", type=Path, nargs="?", default=Path(".emodata"))
    parser.add_argument("carry", type=Path, nargs="?", default=Path(".emocarry"))
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 copy, on the CPU")
    parser.add_argument("--sweep", type=Path, help='JSON {"name": {TrainConfig field: value}}')
    parser.add_argument(
        "--groups", default="", help="only these evaluations (GROUP or GROUP.I), comma-separated"
    )
    parser.add_argument("--final", action="store_true", help="also each variant's final head")
    parser.add_argument("--save-models", action="store_true", help="every fit's head and logits")
    args = parser.parse_args()
    main(
        args.out,
        args.data,
        args.carry,
        device="cpu" if args.quick else "cuda",
        quick=args.quick,
        variants=json.loads(args.sweep.read_text()) if args.sweep else None,
        final=args.final,
        save_models=args.save_models,
        only=[g for g in args.groups.split(",") if g],
    )
