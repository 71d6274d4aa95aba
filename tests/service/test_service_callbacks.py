"""Completion callbacks (issue 26, items 4 and 5): no server-side request forgery, no status
oracle, delivery apart from the analysis. Real receivers on loopback, the real job runner."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from emotivoice.service.app import create_app
from emotivoice.service.callbacks import check_callback_url
from emotivoice.service.errors import CallbackRefusedError
from emotivoice.service.runner import run_job
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store

API = "/api/v1"
LOCAL = "http://127.0.0.1"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(home=tmp_path / "home", callback_secret="s3cret", **overrides)


class Receiver(BaseHTTPRequestHandler):
    """A callback receiver that counts requests; it answers once ``release`` is set."""

    received: list[bytes] = []  # noqa: RUF012 - test-local capture
    release = threading.Event()
    busy = threading.Event()

    def do_POST(self) -> None:
        Receiver.busy.set()
        Receiver.release.wait(30)
        Receiver.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    Receiver.received.clear()
    Receiver.release.clear()
    Receiver.busy.clear()
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    Receiver.release.set()
    server.shutdown()


REFUSED = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://127.0.0.1:6379/",  # Redis on loopback
    "http://[::1]:22/",
    "http://0x7f000001/",  # 127.0.0.1 spelt in hex
    "http://2130706433/",  # and as one number
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://224.0.0.1/",  # multicast
    "http://0.0.0.0:8000/",
    "http://localhost:9/",
    "https://user:pass@example.com/hook",  # credentials in the URL
]


def test_callbacks_to_private_addresses_are_refused(tmp_path: Path, short_wav: Path) -> None:
    settings = _settings(tmp_path, callback_allow_http=True)
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        with short_wav.open("rb") as f:
            upload = client.post(f"{API}/uploads", files={"file": ("a.wav", f)}).json()
        for url in REFUSED:
            response = client.post(
                f"{API}/analyses", json={"upload_id": upload["id"], "callback_url": url}
            )
            assert response.status_code == 422, (url, response.text)
            assert response.json()["code"] == "CALLBACK_URL_REFUSED", url
            batch = client.post(
                f"{API}/analyses/batch", json={"upload_ids": [upload["id"]], "callback_url": url}
            )
            assert batch.json()["code"] == "CALLBACK_URL_REFUSED", url
        assert client.get(f"{API}/analyses").json()["total"] == 0
    https_only = _settings(tmp_path / "https")
    with pytest.raises(CallbackRefusedError, match="https"):
        check_callback_url(https_only, "http://example.com/hook")
    # a public address is fine (resolved here by a stand-in resolver: no network in tests)
    public = check_callback_url(
        https_only, "https://hooks.example.com/x", resolve=lambda h, p: ["93.184.215.14"]
    )
    assert public.addresses == ("93.184.215.14",) and public.port == 443
    with pytest.raises(CallbackRefusedError):  # a name that resolves to a private address
        check_callback_url(
            https_only, "https://rebind.example/x", resolve=lambda h, p: ["10.1.2.3"]
        )
    # what the operator allows, by name, address or network
    for allowed in (["hooks.internal"], ["10.1.2.3"], ["10.0.0.0/8"]):
        ok = _settings(tmp_path / "ok", callback_allowed_hosts=allowed)
        check_callback_url(ok, "https://hooks.internal/x", resolve=lambda h, p: ["10.1.2.3"])


def _failed_job(client: TestClient, short_wav: Path, callback: str) -> tuple[Store, str]:
    """A queued job whose recording was damaged after upload: the worker fails it at once."""
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    with short_wav.open("rb") as f:
        upload = client.post(f"{API}/uploads", files={"file": ("a.wav", f)}).json()
    response = client.post(
        f"{API}/analyses", json={"upload_id": upload["id"], "callback_url": callback}
    )
    assert response.status_code == 202, response.text
    store.upload_path(upload["id"]).write_bytes(b"garbage")
    return store, str(response.json()["id"])


def _callback_status(client: TestClient, analysis_id: str) -> str | None:
    status: str | None = client.get(f"{API}/analyses/{analysis_id}").json()["callback_status"]
    return status


def _wait_status(client: TestClient, analysis_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while _callback_status(client, analysis_id) != wanted:
        assert time.monotonic() < deadline, _callback_status(client, analysis_id)
        time.sleep(0.05)


def test_a_slow_receiver_never_holds_the_worker(
    tmp_path: Path, short_wav: Path, receiver: int
) -> None:
    settings = _settings(
        tmp_path,
        callback_allowed_hosts=["127.0.0.1"],
        callback_allow_http=True,
        callback_timeout_s=20,
    )
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        store, aid = _failed_job(client, short_wav, f"http://127.0.0.1:{receiver}/hook")
        started = time.perf_counter()
        assert run_job(store, aid, 0, "worker") == "failed"
        took = time.perf_counter() - started
        # the job is done while the receiver still holds the notice
        assert took < 5 and not Receiver.received, took
        assert Receiver.busy.wait(10)
        assert _callback_status(client, aid) == "pending"
        Receiver.release.set()
        _wait_status(client, aid, "delivered")
        assert b'"status":"failed"' in Receiver.received[0]


def test_the_status_tells_nothing_about_the_network(
    tmp_path: Path, short_wav: Path, receiver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emotivoice.service.callbacks as callbacks

    monkeypatch.setattr(callbacks, "_courier", callbacks.Courier(tries=2, backoff_s=0.05))
    settings = _settings(
        tmp_path,
        callback_allowed_hosts=["127.0.0.1"],
        callback_allow_http=True,
        callback_timeout_s=1,
    )
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        with socket.socket() as probe:  # a port nobody listens on: connection refused
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        refused_store, refused = _failed_job(client, short_wav, f"http://127.0.0.1:{closed}/h")
        run_job(refused_store, refused, 0, "worker")
        store, slow = _failed_job(client, short_wav, f"http://127.0.0.1:{receiver}/h")
        run_job(store, slow, 0, "worker")  # the receiver does not answer: read time-out
        _wait_status(client, refused, "failed")
        _wait_status(client, slow, "failed")
        for analysis_id in (refused, slow):
            detail = client.get(f"{API}/analyses/{analysis_id}").json()
            assert detail["callback_status"] == "failed"  # not ConnectError / ReadTimeout


def test_a_stored_url_is_checked_again_when_delivered(
    tmp_path: Path, short_wav: Path, receiver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emotivoice.service.callbacks as callbacks

    monkeypatch.setattr(callbacks, "_courier", callbacks.Courier(tries=3, backoff_s=0.05))
    Receiver.release.set()
    settings = _settings(tmp_path, callback_allow_http=True)  # loopback is not allowed
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        with short_wav.open("rb") as f:
            upload = client.post(f"{API}/uploads", files={"file": ("a.wav", f)}).json()
        # a row whose URL never passed the API's check (or whose name now resolves elsewhere)
        hook = f"http://127.0.0.1:{receiver}/hook"
        row = store.create_analysis("anonymous", upload["id"], {"emotion": False}, hook)
        store.upload_path(upload["id"]).write_bytes(b"garbage")
        assert run_job(store, row.id, 0, "worker") == "failed"
        _wait_status(client, row.id, "failed")
    assert not Receiver.received
