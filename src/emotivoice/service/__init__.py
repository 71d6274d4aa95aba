"""The EmotiVoice service: a REST API over a Celery job queue with persistent storage.

One code path, two modes:

* **embedded** (default): ``emotivoice serve`` runs the API, a Celery worker over a SQLite-backed
  broker and a SQLite database under ``EMOTIVOICE_HOME``; no other software is needed.
* **scale-out**: point ``EMOTIVOICE_BROKER_URL`` at Redis and ``EMOTIVOICE_DATABASE_URL`` at
  PostgreSQL, and start ``emotivoice worker`` on as many hosts as needed.

The engine never imports this package; it needs the ``service`` extra
(``pip install 'emotivoice[service]'``).
"""

from __future__ import annotations

import importlib.util

__all__ = ["require_service_extra"]

_REQUIRED = (
    "fastapi",
    "fastapi_offline",
    "uvicorn",
    "celery",
    "sqlalchemy",
    "alembic",
    "pydantic_settings",
)


def require_service_extra() -> None:
    """Raise an ImportError naming the extra when a service dependency is missing."""
    missing = [m for m in _REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"The EmotiVoice service needs {', '.join(missing)}: pip install 'emotivoice[service]'"
        )
