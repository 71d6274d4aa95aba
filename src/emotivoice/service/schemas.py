"""Request and response bodies of the HTTP API (pydantic models).

Responses are built from database rows by the ``from_row`` constructors; the field order of each
model is the key order on the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, WithJsonSchema, model_validator

from emotivoice.emotion.backends import EmotionOptions
from emotivoice.models.registry import ModelInfo
from emotivoice.segmentation import VadOptions

if TYPE_CHECKING:
    from emotivoice.explain.options import ExplainOptions
    from emotivoice.service.db import AnalysisRow, UploadRow, WakeWordJobRow

__all__ = [
    "AnalysisCreate",
    "AnalysisDetail",
    "AnalysisOptionsIn",
    "AnalysisState",
    "AnalysisSummary",
    "BatchCreate",
    "BatchFailed",
    "BatchQueued",
    "BatchResult",
    "ComplexEmotion",
    "EmotionTaxonomy",
    "ErrorBody",
    "Explanations",
    "Health",
    "Languages",
    "Models",
    "Page",
    "Ready",
    "Token",
    "UploadDeleted",
    "UploadInfo",
    "Visualization",
    "WakeWordJob",
    "WakeWordJobCreate",
    "WakeWordOptionsIn",
    "WakeWordSample",
    "iso",
]

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
T = TypeVar("T")
#: A number read back from a stored result, passed on as stored (an integer stays an integer).
StoredNumber = Annotated[float | int, WithJsonSchema({"type": "number"})]


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC (SQLite returns naive datetimes, which are UTC here)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


# --- requests ------------------------------------------------------------------------------


_VAD_DEFAULTS = VadOptions()
_EMOTION_DEFAULTS = EmotionOptions()


class AnalysisOptionsIn(BaseModel):
    """What an analysis can be asked for; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: str | None = Field(
        default=None, max_length=16, description="Spoken language code; detected when absent."
    )
    model: str = Field(default="base", max_length=64, description="Whisper model name.")
    beam_size: int = Field(default=5, ge=1, le=10)
    max_segment_s: float = Field(
        default=_VAD_DEFAULTS.max_segment_s,
        gt=1.0,
        le=30.0,
        description="Longest transcription segment (s); the CLI's default too.",
    )
    features: bool = Field(default=True, description="Acoustic and voice-quality features.")
    emotion: bool = Field(default=True, description="Emotion recognition per segment.")
    emotion_model: str = Field(default="default", max_length=200)
    unit_max_s: float = Field(
        default=_EMOTION_DEFAULTS.unit_max_s,
        ge=1.0,
        le=30.0,
        description="Longest sentence-level emotion unit (s); units are cut at sentence ends "
        "and pauses.",
    )
    window_s: float = Field(
        default=_EMOTION_DEFAULTS.window_s,
        ge=0.5,
        le=30.0,
        description="Length of the emotion timeline's sliding windows (s), stepped by a quarter "
        "of it.",
    )
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
    diarization: bool = Field(
        default=True, description="Tell speakers apart (speaker labels and per-speaker figures)."
    )
    speakers: int | None = Field(
        default=None, ge=1, le=20, description="Exact number of speakers; estimated when absent."
    )
    min_speakers: int = Field(default=1, ge=1, le=20)
    max_speakers: int = Field(default=8, ge=1, le=20)
    channels: Literal["auto", "mix", "split"] = Field(
        default="auto",
        description="split: one speaker per channel (stereo calls); mix: by voice in the mixed "
        "signal; auto: split when the channels carry different talkers.",
    )

    @model_validator(mode="after")
    def _speaker_bounds(self) -> AnalysisOptionsIn:
        if self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers must not be greater than max_speakers")
        return self

    def explain_options(self) -> ExplainOptions:
        """The explanation asked for (checked when made: raises ``InvalidConfigError``)."""
        from emotivoice.explain.attribution import AttributionOptions
        from emotivoice.explain.options import DEFAULT_METHODS, ExplainOptions

        return ExplainOptions(
            methods=tuple(self.explain_methods or DEFAULT_METHODS),
            attribution=AttributionOptions(n_windows=self.explain_windows),
            budget=self.explain_budget,
            emotion_model=self.emotion_model,
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
            **(
                {
                    "unit_max_s": self.unit_max_s,
                    "window_s": self.window_s,
                }
                if self.emotion
                else {}
            ),
            "diarization": self.diarization,
            **(
                {
                    "speakers": self.speakers,
                    "min_speakers": self.min_speakers,
                    "max_speakers": self.max_speakers,
                    "channels": self.channels,
                }
                if self.diarization
                else {}
            ),
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


#: Wake-word job presets: "quick" is a tiny run (35 s to a minute on 2 cores, a weak model to try
#: the studio); "standard" took 9.7 min on 2 cores (docs/wakeword.md has its figures).
WAKEWORD_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "positives": 60,
        "confusables": 50,
        "sentences": 10,
        "val_positives": 16,
        "test_positives": 16,
        "epochs": 2,
        "real_windows": 0.5,
        "hard_negatives": 0,
        "evaluation_hours": 0.05,
    },
    "standard": {
        "positives": 1000,
        "confusables": 800,
        "sentences": 200,
        "val_positives": 100,
        "test_positives": 150,
        "epochs": 8,
        "real_windows": 2.0,
        "hard_negatives": 2000,
        "evaluation_hours": 1.0,
    },
}


class WakeWordOptionsIn(BaseModel):
    """How much a wake-word job generates and trains: a preset, each figure overridable within
    bounds that keep one job to a worker's hour."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["quick", "standard"] = "quick"
    positives: int | None = Field(default=None, ge=8, le=2000, description="Training clips.")
    confusables: int | None = Field(default=None, ge=0, le=2000)
    sentences: int | None = Field(default=None, ge=0, le=600)
    val_positives: int | None = Field(default=None, ge=4, le=400)
    test_positives: int | None = Field(default=None, ge=4, le=400)
    epochs: int | None = Field(default=None, ge=1, le=20)
    hard_negatives: int | None = Field(
        default=None,
        ge=0,
        le=10000,
        description="Windows of the training speech the model scores highest, trained on in a"
        " second stage (0: none).",
    )
    evaluation_hours: float | None = Field(
        default=None, gt=0, le=3, description="Hours of real speech false accepts are counted on."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    def resolved(self) -> dict[str, Any]:
        """The preset's figures with the given ones in their place."""
        given = self.model_dump(exclude={"preset"}, exclude_none=True)
        return {**WAKEWORD_PRESETS[self.preset], **given}


class WakeWordJobCreate(BaseModel):
    """Start training a wake word."""

    model_config = ConfigDict(extra="forbid")

    phrase: str = Field(max_length=200, description='The wake phrase, e.g. "hey jarvis".')
    options: WakeWordOptionsIn = Field(default_factory=WakeWordOptionsIn)


# --- responses -----------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error: a stable upper-case ``code`` and a message for humans."""

    code: str
    message: str


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    mode: Literal["embedded", "scale-out"]
    models_loaded: bool = Field(description="Whether this API process has loaded the models.")
    database: bool
    queue: bool


class Ready(BaseModel):
    ready: bool


class Token(BaseModel):
    """A short-lived token for ``?token=`` in reads and the live stream (not for writes)."""

    token: str
    expires_in: int = Field(description="Seconds the token stays valid.")


class UploadInfo(BaseModel):
    """A stored recording; format and stream details are read from its content."""

    id: str
    filename: str
    format: str
    codec: str
    sample_rate: int
    channels: int
    duration: float = Field(description="Seconds.")
    size_bytes: int
    created_at: str

    @classmethod
    def from_row(cls, row: UploadRow) -> UploadInfo:
        return cls(
            id=row.id,
            filename=row.filename,
            format=row.format,
            codec=row.codec,
            sample_rate=row.sample_rate,
            channels=row.channels,
            duration=row.duration,
            size_bytes=row.size_bytes,
            created_at=iso(row.created_at),
        )


class UploadDeleted(BaseModel):
    id: str
    deleted: bool


class AnalysisSummary(BaseModel):
    """An analysis as listed: its state and the headline of its result once there is one."""

    id: str
    upload_id: str
    status: Status
    progress: int = Field(description="Percent done.")
    stage: str
    attempt: int = Field(description="0 on the first delivery of the job, +1 per requeue.")
    created_at: str
    started_at: str | None
    finished_at: str | None
    duration: StoredNumber | None = Field(description="Seconds of audio analysed.")
    language: str | None
    dominant_emotion: str | None
    emotion_uncertain: bool | None = Field(
        default=None,
        description="True when no emotion stands out in the file (the dominant one's share is "
        "below the uncertainty threshold); null without emotion.",
    )
    error: ErrorBody | None

    @classmethod
    def from_row(cls, row: AnalysisRow) -> AnalysisSummary:
        return cls(**_summary_fields(row))


class AnalysisDetail(AnalysisSummary):
    """An analysis with its options, the segments finished so far and, once done, the result."""

    options: dict[str, Any]
    segments: list[dict[str, Any]]
    result: dict[str, Any] | None
    callback_status: str | None

    @classmethod
    def from_row(
        cls, row: AnalysisRow, segments: list[dict[str, Any]] | None = None
    ) -> AnalysisDetail:
        return cls(
            **_summary_fields(row),
            options=row.options,
            segments=segments or [],
            result=row.result,
            callback_status=row.callback_status,
        )


def _summary_fields(row: AnalysisRow) -> dict[str, Any]:
    result = row.result or {}
    emotion = result.get("emotion") or {}
    return {
        "id": row.id,
        "upload_id": row.upload_id,
        "status": row.status,
        "progress": round(row.progress),
        "stage": row.stage,
        "attempt": row.attempt,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration": result.get("duration"),
        "language": result.get("language"),
        "dominant_emotion": emotion.get("dominant"),
        "emotion_uncertain": emotion.get("uncertain"),
        "error": ErrorBody(code=row.error_code, message=row.error_message or "")
        if row.error_code
        else None,
    }


class AnalysisState(BaseModel):
    """The state an analysis was left in by a request (queued, cancelled)."""

    id: str
    status: Status


class BatchQueued(BaseModel):
    upload_id: str
    id: str
    status: Status


class BatchFailed(BaseModel):
    upload_id: str
    error: ErrorBody


class BatchResult(BaseModel):
    """One entry per upload id, in the order asked: queued, or why not."""

    items: list[BatchQueued | BatchFailed]


class Visualization(BaseModel):
    name: str
    url: str


class Explanations(BaseModel):
    segments: list[dict[str, Any]] = Field(description="One explanation per explained segment.")
    visualizations: list[Visualization]


class ComplexEmotion(BaseModel):
    pair: list[str]
    name: str


class GranularLevels(BaseModel):
    by: Literal["arousal", "valence", "intensity"] = Field(
        description="The dimension whose value picks the level."
    )
    low: str
    medium: str
    high: str


class EmotionTaxonomy(BaseModel):
    base: list[str]
    dimensions: list[str]
    granular: dict[str, GranularLevels] = Field(
        description="Per base emotion, the granular emotion at each intensity level."
    )
    levels: dict[str, float] = Field(
        description="Centre of each level on the 0–1 scale of its dimension (a fuzzy partition)."
    )
    primary_min: dict[str, float] = Field(
        description="Probability the top base emotion needs to be refined."
    )
    secondary_min: float = Field(description="Probability the second base emotion needs.")
    blend_min: float = Field(description="Probability both emotions of a blend need.")
    complex: list[ComplexEmotion]
    granular_count: int


class Languages(BaseModel):
    languages: list[str]


class Models(BaseModel):
    whisper: list[ModelInfo]
    emotion: list[str]


class WakeWordJob(BaseModel):
    """A wake-word training job: its progress while it runs, its figures once done."""

    id: str
    phrase: str
    status: Status
    progress: int = Field(description="Percent done.")
    stage: str
    metrics: dict[str, Any] = Field(
        description="The latest epoch's figures: epoch, epochs, train_loss, val_loss, val_frr "
        "(validation false rejects at the window threshold), val_threshold, ..."
    )
    options: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: ErrorBody | None
    result: dict[str, Any] | None = Field(
        description="Once completed: the streaming evaluation (false rejects at 0.5 and 1 false "
        "accept per hour, EER, latency, the hours counted over), the threshold, the epochs."
    )
    wake_word: str | None = Field(
        description="Once completed: the name to give /stream's start message as wake_word."
    )

    @classmethod
    def from_row(cls, row: WakeWordJobRow) -> WakeWordJob:
        return cls(
            id=row.id,
            phrase=row.phrase,
            status=row.status,  # type: ignore[arg-type]
            progress=round(row.progress),
            stage=row.stage,
            metrics=row.metrics or {},
            options=row.options or {},
            created_at=iso(row.created_at),
            started_at=iso(row.started_at),
            finished_at=iso(row.finished_at),
            error=ErrorBody(code=row.error_code, message=row.error_message or "")
            if row.error_code
            else None,
            result=row.result,
            wake_word=row.id if row.status == "completed" else None,
        )


class WakeWordSample(BaseModel):
    """A generated clip kept to listen to."""

    name: str
    kind: Literal["positive", "confusable", "sentence"]
    text: str
    voice: str
    seconds: float
    url: str
