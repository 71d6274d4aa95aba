"""The wake-word studio: train a detector for a typed phrase from offline TTS and real speech,
measure it as a stream, export ONNX, detect live.

Typical use::

    from emotivoice.wakeword import load_model

    model = load_model("hey_jarvis")          # shipped; or an ONNX file the studio made
    detector = model.detector()                # one per stream
    for detection in detector.feed(samples):   # 16 kHz mono float32, chunks of any size
        print(detection.time_s, detection.score)

Making a model: :func:`generate_dataset` (TTS positives and confusables, real-speech
negatives), :func:`train_model` (needs the ``torch`` extra; ``onnx`` from the ``wakeword``
extra for the export), :func:`emotivoice.wakeword.search.search` (an Optuna search over the
recipe on the validation split, resumable; ``optuna`` from the ``wakeword`` extra; the
submodule's name, so not re-exported here), :func:`evaluate_model` (streaming
false rejects, false accepts per hour, EER, latency, DET), :func:`compare_models` (ours and
openWakeWord's and microWakeWord's models on one test set, the peers in their own
environment). Detection needs only numpy and onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "DataCard",
    "Detection",
    "EvaluationOptions",
    "EvaluationReport",
    "GenerateOptions",
    "OperatingPoint",
    "SearchOptions",
    "SearchResult",
    "TrainOptions",
    "TrainResult",
    "WakePhrase",
    "WakeWordDetector",
    "WakeWordModel",
    "available_models",
    "compare_models",
    "confusable_phrases",
    "detections",
    "evaluate_model",
    "export_run",
    "fa_text",
    "generate_dataset",
    "listen_file",
    "listen_microphone",
    "listen_pcm",
    "load_dataset",
    "load_model",
    "score_samples",
    "train_model",
    "write_report",
]

# Loaded on first use: importing the package (as the CLI's parser does) loads no SciPy,
# onnxruntime or PyTorch.
_LAZY = {
    "DataCard": "data",
    "GenerateOptions": "data",
    "generate_dataset": "data",
    "load_dataset": "data",
    "Detection": "detector",
    "WakeWordDetector": "detector",
    "WakeWordModel": "detector",
    "available_models": "detector",
    "load_model": "detector",
    "score_samples": "detector",
    "detections": "detector",
    "EvaluationOptions": "evaluate",
    "EvaluationReport": "evaluate",
    "OperatingPoint": "evaluate",
    "evaluate_model": "evaluate",
    "fa_text": "evaluate",
    "write_report": "evaluate",
    "export_run": "export",
    "compare_models": "peers",
    "listen_file": "listen",
    "listen_microphone": "listen",
    "listen_pcm": "listen",
    "WakePhrase": "phrase",
    "confusable_phrases": "phrase",
    "SearchOptions": "search",
    "SearchResult": "search",
    "TrainOptions": "train",
    "TrainResult": "train",
    "train_model": "train",
}

if TYPE_CHECKING:
    from emotivoice.wakeword.data import DataCard, GenerateOptions, generate_dataset, load_dataset
    from emotivoice.wakeword.detector import (
        Detection,
        WakeWordDetector,
        WakeWordModel,
        available_models,
        detections,
        load_model,
        score_samples,
    )
    from emotivoice.wakeword.evaluate import (
        EvaluationOptions,
        EvaluationReport,
        OperatingPoint,
        evaluate_model,
        fa_text,
        write_report,
    )
    from emotivoice.wakeword.export import export_run
    from emotivoice.wakeword.listen import listen_file, listen_microphone, listen_pcm
    from emotivoice.wakeword.peers import compare_models
    from emotivoice.wakeword.phrase import WakePhrase, confusable_phrases
    from emotivoice.wakeword.search import SearchOptions, SearchResult
    from emotivoice.wakeword.train import TrainOptions, TrainResult, train_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emotivoice.wakeword' has no attribute {name!r}")
    return getattr(importlib.import_module(f"emotivoice.wakeword.{module}"), name)
