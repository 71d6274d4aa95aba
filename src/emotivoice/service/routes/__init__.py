"""The REST routes, one module per resource, all mounted under :data:`API_PREFIX`.

* :mod:`.health`: ``/health``, ``/ready``;
* :mod:`.uploads`: ``/uploads`` (store, list, fetch, delete recordings);
* :mod:`.analyses`: ``/analyses`` (queue, batch, poll, list, cancel, export);
* :mod:`.explanations`: ``/analyses/{id}/explanations`` and their figures;
* :mod:`.reference`: ``/emotions``, ``/languages``, ``/models``;
* :mod:`.tokens`: ``/tokens`` (short-lived tokens for media URLs and the live stream);
* :mod:`.wakeword`: ``/wakeword/jobs`` (train a wake word, its samples, DET curve, model).

The live-analysis WebSocket ``/stream`` is :mod:`emotivoice.service.stream`, a protocol of its
own. :func:`emotivoice.service.app.create_app` mounts them all.
"""

from __future__ import annotations

from typing import Any

from emotivoice.service.schemas import ErrorBody

__all__ = ["API_PREFIX", "ERROR_RESPONSES"]

API_PREFIX = "/api/v1"

#: The error statuses every REST route documents, all with an :class:`ErrorBody`.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 429)
}
