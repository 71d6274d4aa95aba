"""Model registry and runtimes."""

from emotivoice.models.registry import (
    DEFAULT_MODEL,
    ModelInfo,
    available_models,
    cache_dir,
    model_info,
    resolve_whisper_model,
)
from emotivoice.models.whisper import load_model, resolve_device

__all__ = [
    "DEFAULT_MODEL",
    "ModelInfo",
    "available_models",
    "cache_dir",
    "load_model",
    "model_info",
    "resolve_device",
    "resolve_whisper_model",
]
