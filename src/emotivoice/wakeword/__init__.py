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
extra for the export), :func:`evaluate_model` (streaming false rejects, false accepts per hour,
EER, latency, DET). Detection needs only numpy and onnxruntime.
"""

from __future__ import annotations

from emotivoice.wakeword.data import DataCard, GenerateOptions, generate_dataset, load_dataset
from emotivoice.wakeword.detector import (
    Detection,
    WakeWordDetector,
    WakeWordModel,
    available_models,
    load_model,
    score_samples,
)
from emotivoice.wakeword.evaluate import (
    EvaluationOptions,
    EvaluationReport,
    OperatingPoint,
    evaluate_model,
    write_report,
)
from emotivoice.wakeword.phrase import WakePhrase, confusable_phrases
from emotivoice.wakeword.train import TrainOptions, TrainResult, train_model

__all__ = [
    "DataCard",
    "Detection",
    "EvaluationOptions",
    "EvaluationReport",
    "GenerateOptions",
    "OperatingPoint",
    "TrainOptions",
    "TrainResult",
    "WakePhrase",
    "WakeWordDetector",
    "WakeWordModel",
    "available_models",
    "confusable_phrases",
    "evaluate_model",
    "generate_dataset",
    "load_dataset",
    "load_model",
    "score_samples",
    "train_model",
    "write_report",
]
