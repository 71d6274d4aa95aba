"""Request and response bodies of the HTTP API (pydantic models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

__all__ = [
    "AnalysisCreate",
    "AnalysisOptionsIn",
    "BatchCreate",
    "ErrorBody",
    "Page",
    "iso",
]

Status = Literal["queued", "running", "completed", "failed", "cancelled"]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC (SQLite returns naive datetimes, which are UTC here)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


class AnalysisOptionsIn(BaseModel):
    """What an analysis can be asked for; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: str | None = Field(
        default=None, max_length=16, description="Spoken language code; detected when absent."
    )
    model: str = Field(default="base", max_length=64, description="Whisper model name.")
    beam_size: int = Field(default=5, ge=1, le=10)
    max_segment_s: float = Field(default=30.0, gt=1.0, le=30.0)
    features: bool = Field(default=True, description="Acoustic and voice-quality features.")
    emotion: bool = Field(default=True, description="Emotion recognition per segment.")
    emotion_model: str = Field(default="default", max_length=200)
    explain: bool = Field(
        default=False, description="Explain the emotion of the longest segments (slow)."
    )
    explain_methods: list[str] | None = Field(
        default=None,
        max_length=8,
        description="Any of shapley, counterfactual, attention, gradients "
        "(default: shapley and counterfactual).",
    )
    explain_windows: int = Field(default=6, ge=2, le=10)
    explain_budget: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most model evaluations per explained segment for time attribution, LIME, "
        "deletion curves and counterfactuals together (the defaults use 72).",
    )

    def analyzer_kwargs(self) -> dict[str, Any]:
        """Flat options for :meth:`emotivoice.pipeline.AnalyzeOptions.from_kwargs`."""
        return {
            "language": self.language,
            "model": self.model,
            "beam_size": self.beam_size,
            "max_segment_s": self.max_segment_s,
            "features": self.features,
            "emotion": self.emotion,
            "emotion_model": self.emotion_model,
        }


class AnalysisCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(min_length=1, max_length=64)
    options: AnalysisOptionsIn = Field(default_factory=AnalysisOptionsIn)
    callback_url: HttpUrl | None = Field(
        default=None, description="POSTed the analysis summary on completion, HMAC-signed."
    )


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upload_ids: list[str] = Field(min_length=1, max_length=100)
    options: AnalysisOptionsIn = Field(default_factory=AnalysisOptionsIn)
    callback_url: HttpUrl | None = None


class ErrorBody(BaseModel):
    code: str
    message: str


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
