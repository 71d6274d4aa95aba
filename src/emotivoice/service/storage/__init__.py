"""Persistent state of the service: uploads, analyses, segment results, API keys and files.

:class:`Store` is the one object callers use; it is composed of one part per concern, all over
the same engine and sessions (:class:`~.base.StoreBase`):

* :mod:`.uploads`: uploaded recordings (:class:`~.uploads.UploadStore`);
* :mod:`.analyses`: analyses as clients see them (:class:`~.analyses.AnalysisStore`);
* :mod:`.jobs`: the workers' fenced writes and the janitor's requeues (:class:`~.jobs.JobStore`);
* :mod:`.keys`: API keys (:class:`~.keys.KeyStore`);
* :mod:`.wakeword`: wake-word training jobs (:class:`~.wakeword.WakeWordStore`).

Every query is scoped by ``owner`` (an API key id, or ``anonymous`` when keys are off), so one
key never sees another key's data. Worker writes are fenced by the analysis' ``attempt``: only the
delivery that currently holds a job may write its progress, segments, result and files, which
makes result writes idempotent when a job is redelivered.

Files of an analysis live in :meth:`Store.artefact_dir`, one folder per delivery
(``attempt-N``); the API serves the folder of the attempt that completed the job, so a stale or
cancelled delivery never overwrites or resurrects anything a client can fetch.
"""

from __future__ import annotations

from emotivoice.service.storage.analyses import AnalysisStore
from emotivoice.service.storage.base import (
    ACTIVE,
    EXPLAIN_FOLDER,
    FINISHED,
    REPORT_FILE,
    RESULT_STEM,
    StoreBase,
    new_id,
)
from emotivoice.service.storage.jobs import JobStore
from emotivoice.service.storage.keys import KeyStore, NewKey, hash_key
from emotivoice.service.storage.uploads import UploadStore, display_name
from emotivoice.service.storage.wakeword import WakeWordStore

__all__ = [
    "ACTIVE",
    "EXPLAIN_FOLDER",
    "FINISHED",
    "REPORT_FILE",
    "RESULT_STEM",
    "NewKey",
    "Store",
    "StoreBase",
    "display_name",
    "hash_key",
    "new_id",
]


class Store(UploadStore, AnalysisStore, JobStore, KeyStore, WakeWordStore):
    """Database and data directory of one service deployment.

    ``Store(settings)`` migrates the database to the newest schema first; pass
    ``migrate_schema=False`` where another process (the API) does that.
    """
