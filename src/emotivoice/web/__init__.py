"""The web UI: static pages and small ES modules served by ``emotivoice serve`` (no build step,
no CDN: everything it needs ships in this folder)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["static_dir"]


def static_dir() -> Path:
    """The folder of the UI's pages, scripts and styles."""
    return Path(str(resources.files("emotivoice.web").joinpath("static")))
