"""The six base emotions every backend maps onto, in the order of model outputs."""

from __future__ import annotations

BASE_EMOTIONS: tuple[str, ...] = ("anger", "fear", "happiness", "neutral", "sadness", "surprise")
