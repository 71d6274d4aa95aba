"""Optional dependencies: one way to say which extra to install when one is missing.

Heavy or rarely needed parts sit behind extras (``pip install 'emotivoice[plots]'``); code that
needs one calls :func:`import_extra` or :func:`require_extra`, which raise
:class:`~emotivoice.errors.MissingExtraError` (an ``ImportError``) naming the extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

from emotivoice.errors import MissingExtraError

__all__ = ["EXTRAS", "import_extra", "pyplot", "require_extra"]

#: extra → the modules it installs that the code imports (pyproject.toml lists the packages)
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "transformers"),
    "plots": ("matplotlib",),
    "explain": ("torch", "transformers", "matplotlib", "captum"),
    "pdf": ("reportlab", "matplotlib"),
    "service": (
        "reportlab",
        "matplotlib",
        "fastapi",
        "fastapi_offline",
        "uvicorn",
        "python_multipart",
        "celery",
        "sqlalchemy",
        "alembic",
        "pydantic_settings",
        "httpx",
        "websockets",
    ),
    "mic": ("sounddevice",),
    "robustness": ("torch", "pesq", "pystoi"),
    "pyannote": ("pyannote.audio",),
    "evaluation": ("pyannote.metrics",),
    "wakeword": ("torch", "onnx", "optuna"),
    "assistant": ("cyllama", "httpx", "playwright"),
}


def _message(extra: str, missing: list[str], purpose: str | None) -> str:
    what = purpose or f"This feature of EmotiVoice ({extra})"
    return f"{what} needs {', '.join(missing)}: pip install 'emotivoice[{extra}]'"


def _installed(module: str) -> bool:
    if module in sys.modules:  # a module set to None there is one that must not import
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def require_extra(extra: str, purpose: str | None = None) -> None:
    """Check that every module of ``extra`` is installed, without importing them.

    Raises:
        MissingExtraError: naming the missing modules and the extra to install.
    """
    if extra not in EXTRAS:
        raise ValueError(f"Unknown extra {extra!r}; extras = {sorted(EXTRAS)}")
    missing = [m for m in EXTRAS[extra] if not _installed(m)]
    if missing:
        raise MissingExtraError(_message(extra, missing, purpose), extra)


def import_extra(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module``, which the optional ``extra`` installs.

    Raises:
        MissingExtraError: the module cannot be imported; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(_message(extra, [module.split(".")[0]], purpose), extra) from error


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files, no display), from the ``plots`` extra."""
    matplotlib = import_extra("matplotlib", "plots", "Plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt
