"""Train the default emotion head on an accelerator machine from packed data.

Inputs (carried): ``.emodata/`` (``scripts/pack_emotion_corpus.py``) and ``.emocarry/encoder.npz``
(``pack_emotion_corpus.py --encoder``). Writes ``emotion-head.npz`` and ``emotion-report.json``
to the folder given as the first argument. Same recipe as ``emotivoice train-emotion``, which
reads the corpora directly and runs anywhere; this entry point only avoids decoding and
VAD-cropping on a machine without the shared data.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import pickle
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotivoice.emotion.training import (
    Clip,
    FitJob,
    JobRunner,
    StateSet,
    TrainConfig,
    build_state_set,
    build_state_sets,
    run_fit_job,
    run_recipe,
)
from emotivoice.models.torch_whisper import encoder_from_ct2_variables, load_packed_variables


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


def _init_worker(path: str, config: TrainConfig, device: str) -> None:
    import torch

    torch.set_num_threads(1)
    with open(path, "rb") as f:
        _worker.update(data=pickle.load(f), config=config, device=device)


def _run_job(job: FitJob) -> Any:
    return run_fit_job(_worker["data"], job, _worker["config"], _worker["device"])


def parallel_runner(data: StateSet, config: TrainConfig, device: str) -> JobRunner:
    """Run the recipe's fit jobs in one process each, all at once on the one GPU (a job keeps
    the GPU busy a small fraction of the time: the layers are small)."""
    path = "/tmp/emotion-states.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=5)

    def run(jobs: Sequence[FitJob]) -> list[Any]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(jobs), context, _init_worker, (path, config, device)) as pool:
            return list(pool.map(_run_job, jobs))

    return run


PROBE = {"pooling": "mean_std", "layer_norm": False, "hidden_dim": 0, "batch_norm": True}
STUDY_TAPS = ("final", "layer3", "layer4", "prefix4")


def main(
    out: Path,
    data: Path = Path(".emodata"),
    carry: Path = Path(".emocarry"),
    device: str = "cuda",
    quick: bool = False,
    study: bool = False,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.time()
    clips = load_packed_clips(data)
    logging.info("decoded %d clips in %.0f s", len(clips), time.time() - started)
    variables, filters = load_packed_variables(carry / "encoder.npz")
    config = TrainConfig(epochs=2, augment_copies=1) if quick else TrainConfig()
    # the transformers encoder computes frozen states; a fine-tuned prefix reads log-mels only
    encoder = None
    if study or not config.adapter_rank:
        encoder = encoder_from_ct2_variables(variables).to(device)
    if study:
        sets = build_state_sets(encoder, filters, clips, config, device, STUDY_TAPS)
        logging.info("states after %.0f s", time.time() - started)
        for tap, states in sets.items():
            cfg = replace(config, **PROBE)
            report = run_recipe(states, cfg, device, ravdess_folds=4, nemo_folds=0, final=False)
            line = {k: v["ua"] for k, v in report.evaluations.items()}
            logging.info("study %s: %s", tap, line)
        return
    states = build_state_set(encoder, filters, clips, config, device, variables)
    logging.info("states of %d copies after %.0f s", len(states.labels), time.time() - started)
    runner = parallel_runner(states, config, device) if device == "cuda" else None
    folds = (2, 2) if quick else (4, 3)
    result = run_recipe(states, config, device, *folds, runner=runner)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "emotion-head.npz", **result.arrays)
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
    args = sys.argv[1:]
    quick, study = "--quick" in args, "--study" in args
    args = [a for a in args if not a.startswith("--")]
    device = "cpu" if quick else "cuda"
    main(Path(args[0]), *(Path(a) for a in args[1:3]), device=device, quick=quick, study=study)
