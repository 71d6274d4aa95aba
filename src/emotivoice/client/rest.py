"""A small Python client of the REST API (``httpx``): upload, analyse, wait, export.

Example::

    from emotivoice.client.rest import ServiceClient

    with ServiceClient("http://127.0.0.1:8000", api_key="ev_...") as client:
        analysis = client.analyze_file("call.mp3", language="en")  # an Analysis
        print(analysis.text)
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from emotivoice.errors import EmotiVoiceError
from emotivoice.results import Analysis

__all__ = ["ServiceClient", "ServiceError"]

FINISHED = frozenset({"completed", "failed", "cancelled"})


class ServiceError(EmotiVoiceError):
    """The service answered with an error; ``code`` is its stable API code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status} {code})")
        self.status, self.code = status, code


class ServiceClient:
    """Talks to one EmotiVoice server (``base_url`` without ``/api/v1``)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout
        )

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                raise ServiceError(response.status_code, body["code"], body["message"])
            except (ValueError, KeyError):
                raise ServiceError(response.status_code, "HTTP_ERROR", response.text) from None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._json(self.http.get(path, params=params))

    def upload(self, path: str | Path) -> dict[str, Any]:
        """Upload a recording; returns ``{id, duration, format, ...}``."""
        path = Path(path)
        with path.open("rb") as f:
            return dict(self._json(self.http.post("/uploads", files={"file": (path.name, f)})))

    def analyze(
        self, upload_id: str, callback_url: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Queue an analysis of an upload; returns ``{id, status}``."""
        body: dict[str, Any] = {"upload_id": upload_id, "options": options}
        if callback_url:
            body["callback_url"] = callback_url
        return dict(self._json(self.http.post("/analyses", json=body)))

    def status(self, analysis_id: str) -> dict[str, Any]:
        return dict(self.get(f"/analyses/{analysis_id}"))

    def wait(self, analysis_id: str, timeout: float = 3600, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the analysis finishes; returns its final status document."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(analysis_id)
            if body["status"] in FINISHED:
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Analysis {analysis_id} still {body['status']} after {timeout} s"
                )
            time.sleep(poll)

    def submit_file(self, path: str | Path, **options: Any) -> dict[str, Any]:
        """Upload and queue an analysis; returns ``{id, status}`` without waiting."""
        upload = self.upload(path)
        return self.analyze(upload["id"], **options)

    def result(self, analysis_id: str, timeout: float = 3600) -> Analysis:
        """Wait for the analysis and return it as an :class:`~emotivoice.results.Analysis`
        (the same frozen dataclasses as ``emotivoice.analyze``; :meth:`wait` gives the raw
        status document).

        Raises:
            ServiceError: the analysis failed or was cancelled (its error code and message).
        """
        body = self.wait(analysis_id, timeout)
        if body["status"] != "completed":
            error = body.get("error") or {}
            raise ServiceError(
                200,
                error.get("code") or body["status"].upper(),
                error.get("message") or f"Analysis {analysis_id} was {body['status']}.",
            )
        return Analysis.from_dict(body["result"])

    def analyze_file(self, path: str | Path, **options: Any) -> Analysis:
        """Upload, analyse and wait: the finished :class:`~emotivoice.results.Analysis`.

        For the analysis' id (exports, explanations), use :meth:`submit_file` and
        :meth:`result`.
        """
        return self.result(self.submit_file(path, **options)["id"])

    def export(self, analysis_id: str, fmt: str = "json") -> bytes:
        """The export bytes (``json``, ``csv``, ``pdf``, ``srt``, ``vtt``)."""
        response = self.http.get(f"/analyses/{analysis_id}/export", params={"format": fmt})
        if response.status_code >= 400:
            self._json(response)
        return response.content
