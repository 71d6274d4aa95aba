"""The fast Whisper runtime (faster-whisper on CTranslate2), loaded once per process."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from emotivoice.errors import InvalidConfigError, ModelNotFoundError
from emotivoice.models.registry import DEFAULT_MODEL, resolve_whisper_model

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["DEVICES", "default_compute_type", "load_model", "resolve_device"]

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
_models: dict[tuple[str, str, str, int, int], WhisperModel] = {}
_lock = threading.Lock()


def resolve_device(device: str = "auto") -> str:
    """Map ``auto`` to ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device not in DEVICES:
        raise InvalidConfigError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    import ctranslate2

    has_gpu = ctranslate2.get_cuda_device_count() > 0
    if device == "cuda" and not has_gpu:
        raise InvalidConfigError("device 'cuda' was requested but no CUDA GPU is visible; use cpu.")
    if device != "auto":
        return device
    return "cuda" if has_gpu else "cpu"


def default_compute_type(device: str) -> str:
    """int8 on CPU, float16 on CUDA."""
    return "float16" if device == "cuda" else "int8"


def load_model(
    name: str = DEFAULT_MODEL,
    device: str = "auto",
    compute_type: str | None = None,
    cpu_threads: int = 0,
    num_workers: int = 1,
) -> WhisperModel:
    """Load (once per process) a faster-whisper model.

    Args:
        name: a name from :func:`emotivoice.models.available_models`, a CTranslate2 directory
            or a Hugging Face id.
        device: ``auto``, ``cpu`` or ``cuda``.
        compute_type: CTranslate2 compute type; default int8 on CPU, float16 on CUDA.
        cpu_threads: CTranslate2 intra-op threads; 0 lets CTranslate2 choose.
        num_workers: model replicas (sharing the weights) that serve concurrent calls.

    Returns:
        A shared ``faster_whisper.WhisperModel``; treat it as read-only.
    """
    from faster_whisper import WhisperModel

    resolved_device = resolve_device(device)
    compute = compute_type or default_compute_type(resolved_device)
    path = resolve_whisper_model(name)
    key = (str(path), resolved_device, compute, cpu_threads, num_workers)
    with _lock:
        model = _models.get(key)
        if model is None:
            logger.info("Loading Whisper %s on %s (%s)", name, resolved_device, compute)
            try:
                model = WhisperModel(
                    str(path),
                    device=resolved_device,
                    compute_type=compute,
                    cpu_threads=cpu_threads,
                    num_workers=num_workers,
                    local_files_only=True,
                )
            except (RuntimeError, ValueError) as e:
                raise ModelNotFoundError(f"Could not load Whisper model {name!r}: {e}") from e
            _models[key] = model
    return model
