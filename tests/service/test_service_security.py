"""Service hardening (issue 26), tried as an attacker would: real app, real sockets on loopback.

Authentication before the body, body limits, refused keys counted per address, Host and Origin
checks of the keys-off default, security headers, tokens instead of keys in URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from emotivoice.service.app import create_app
from emotivoice.service.local_server import serve
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store

API = "/api/v1"
LOCAL = "http://127.0.0.1"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(home=tmp_path / "home", **overrides)


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and "Traceback" not in body["message"]
    return dict(body)


def _raw_post_head(base: str, path: str, length: int, headers: dict[str, str]) -> str:
    """POST announcing ``length`` body bytes, send only 1 KB of them, return the response.

    A server that reads the body before it checks the key waits for the rest and never answers
    within the timeout.
    """
    port = int(base.rsplit(":", 1)[1])
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"[" + b"0," * 512)
        sock.settimeout(10)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.decode("utf-8", "replace")


def test_a_wrong_key_is_refused_before_the_body_is_read(tmp_path: Path) -> None:
    settings = _settings(tmp_path, require_api_key=True, auth_failures_per_minute=0)
    with serve(create_app(settings, janitor=False)) as base:
        started = time.perf_counter()
        reply = _raw_post_head(
            base,
            f"{API}/analyses",
            30 * 1024 * 1024,
            {"X-API-Key": "ev_wrong", "Content-Type": "application/json"},
        )
        elapsed = time.perf_counter() - started
        assert reply.startswith("HTTP/1.1 401"), reply[:200]
        assert '"code":"UNAUTHORIZED"' in reply and elapsed < 5
        # the same for an upload: no key, nothing read
        reply = _raw_post_head(
            base, f"{API}/uploads", 90 * 1024 * 1024, {"Content-Type": "multipart/form-data"}
        )
        assert reply.startswith("HTTP/1.1 401"), reply[:200]


def test_json_bodies_have_their_own_small_limit(tmp_path: Path, short_wav: Path) -> None:
    settings = _settings(tmp_path, max_json_kb=8)
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        big = {"upload_ids": ["x" * 120] * 100, "options": {}}  # 12 KB
        _assert_error(client.post(f"{API}/analyses/batch", json=big), 413, "REQUEST_TOO_LARGE")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            yield b'{"upload_id": "'
            for _ in range(20):
                yield b"x" * 1024
            yield b'"}'

        chunked = client.post(
            f"{API}/analyses", content=chunks(), headers={"Content-Type": "application/json"}
        )
        _assert_error(chunked, 413, "REQUEST_TOO_LARGE")
        with short_wav.open("rb") as f:  # uploads keep the upload limit
            upload = client.post(f"{API}/uploads", files={"file": ("a.wav", f)})
        assert upload.status_code == 201, upload.text


def test_refused_keys_count_against_the_client_address(tmp_path: Path) -> None:
    settings = _settings(tmp_path, require_api_key=True, auth_failures_per_minute=3)
    good = Store(settings).create_key("good")
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        for i in range(3):
            bad = {"X-API-Key": f"ev_guess{i}"}
            _assert_error(client.get(f"{API}/uploads", headers=bad), 401, "UNAUTHORIZED")
        limited = client.post(f"{API}/analyses", json={}, headers={"X-API-Key": "ev_guess"})
        _assert_error(limited, 429, "RATE_LIMITED")
        assert int(limited.headers["Retry-After"]) >= 1
        # the address is blocked for this window, whatever key it shows next
        _assert_error(
            client.get(f"{API}/uploads", headers={"X-API-Key": good.secret}), 429, "RATE_LIMITED"
        )


def test_keys_off_answers_only_loopback_hosts_and_its_own_pages(
    tmp_path: Path, short_wav: Path
) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        # DNS rebinding: a page of attacker.example whose name now points at 127.0.0.1
        rebound = client.get(f"{API}/uploads", headers={"Host": "attacker.example"})
        _assert_error(rebound, 400, "HOST_NOT_ALLOWED")
        _assert_error(
            client.get("/", headers={"Host": "attacker.example:8000"}), 400, "HOST_NOT_ALLOWED"
        )
        for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
            assert client.get(f"{API}/uploads", headers={"Host": host}).status_code == 200, host
        # a cross-origin form post from another page on the machine
        with short_wav.open("rb") as f:
            cross = client.post(
                f"{API}/uploads",
                files={"file": ("a.wav", f)},
                headers={"Origin": "http://evil.example"},
            )
        _assert_error(cross, 403, "ORIGIN_NOT_ALLOWED")
        _assert_error(
            client.get(f"{API}/uploads", headers={"Origin": "null"}), 403, "ORIGIN_NOT_ALLOWED"
        )
        assert not list(settings.uploads_dir.iterdir())
        with short_wav.open("rb") as f:  # the UI's own page (same origin) may
            own = client.post(
                f"{API}/uploads",
                files={"file": ("a.wav", f)},
                headers={"Origin": "http://127.0.0.1"},
            )
        assert own.status_code == 201, own.text
    configured = _settings(
        tmp_path / "configured",
        allowed_hosts=["speech.lan"],
        allowed_origins=["http://tools.lan:3000"],
    )
    with TestClient(create_app(configured, janitor=False), base_url="http://speech.lan") as c:
        assert c.get(f"{API}/uploads").status_code == 200
        assert (
            c.get(f"{API}/uploads", headers={"Origin": "http://tools.lan:3000"}).status_code == 200
        )
        _assert_error(
            c.get(f"{API}/uploads", headers={"Host": "127.0.0.1"}), 400, "HOST_NOT_ALLOWED"
        )
    keyed = _settings(tmp_path / "keyed", require_api_key=True)
    key = Store(keyed).create_key("k")
    with TestClient(create_app(keyed, janitor=False), base_url="http://speech.example") as c:
        # with keys on, the key is what protects the data; host names are the proxy's business
        listed = c.get(f"{API}/uploads", headers={"X-API-Key": key.secret})
        assert listed.status_code == 200


def test_a_web_page_of_another_origin_cannot_open_a_stream(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    settings = _settings(tmp_path)

    async def attempt(url: str, origin: str) -> int:
        try:
            async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send(json.dumps({"type": "start", "save": True}))
                await ws.send(json.dumps({"type": "stop"}))
                async for _ in ws:
                    pass
                return 101
        except InvalidStatus as refused:
            return int(refused.response.status_code)

    with serve(create_app(settings, janitor=False)) as base:
        url = base.replace("http://", "ws://") + f"{API}/stream"
        assert asyncio.run(attempt(url, "http://evil.example")) == 403
        assert asyncio.run(attempt(url, base)) == 101  # the UI's own origin
    assert not list(settings.uploads_dir.iterdir())


def test_security_headers_on_ui_api_and_docs(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path), janitor=False), base_url=LOCAL) as client:
        for path in ("/", "/live", f"{API}/health", f"{API}/uploads/nope", "/docs", "/redoc"):
            response = client.get(path)
            headers = response.headers
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["referrer-policy"] == "no-referrer", path
            csp = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
        assert (
            "'unsafe-inline'"
            not in client.get("/")
            .headers["content-security-policy"]
            .split("script-src")[1]
            .split(";")[0]
        )


def test_tokens_stand_for_a_key_in_read_urls_only(tmp_path: Path, short_wav: Path) -> None:
    settings = _settings(tmp_path, require_api_key=True, token_ttl_s=60)
    store = Store(settings)
    alice, bob = store.create_key("alice"), store.create_key("bob")
    a = {"X-API-Key": alice.secret}
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        with short_wav.open("rb") as f:
            upload = client.post(f"{API}/uploads", files={"file": ("a.wav", f)}, headers=a).json()
        issued = client.post(f"{API}/tokens", headers=a)
        assert issued.status_code == 201 and issued.json()["expires_in"] == 60
        token = issued.json()["token"]
        audio = client.get(f"{API}/uploads/{upload['id']}/audio", params={"token": token})
        assert audio.status_code == 200 and audio.content == short_wav.read_bytes()
        # not for writes, not forged, not someone else's data
        _assert_error(
            client.post(f"{API}/analyses?token={token}", json={"upload_id": upload["id"]}),
            401,
            "UNAUTHORIZED",
        )
        forged = token[:-2] + ("00" if not token.endswith("00") else "11")
        _assert_error(client.get(f"{API}/uploads", params={"token": forged}), 401, "UNAUTHORIZED")
        bob_token = client.post(f"{API}/tokens", headers={"X-API-Key": bob.secret}).json()["token"]
        _assert_error(
            client.get(f"{API}/uploads/{upload['id']}", params={"token": bob_token}),
            404,
            "NOT_FOUND",
        )
        signer = client.app.state.services.signer  # type: ignore[attr-defined]
        expired = signer.issue(alice.id, now=time.time() - 61)
        _assert_error(client.get(f"{API}/uploads", params={"token": expired}), 401, "UNAUTHORIZED")
        store.revoke_key(alice.id)  # a token dies with its key
        _assert_error(client.get(f"{API}/uploads", params={"token": token}), 401, "UNAUTHORIZED")


def test_the_access_log_never_shows_a_key_or_token(tmp_path: Path) -> None:
    from emotivoice.evaluation.processes import running_server, service_env

    home = tmp_path / "home"
    settings = _settings(tmp_path, require_api_key=True)
    key = Store(settings).create_key("logged")
    log = tmp_path / "serve.log"
    env = service_env(home, require_api_key="true")
    with running_server(env, log, workers=0) as client:
        listed = client.get("/uploads", params={"api_key": key.secret})
        assert listed.status_code == 200
        token = client.post("/tokens", headers={"X-API-Key": key.secret}).json()["token"]
        assert client.get("/uploads", params={"token": token}).status_code == 200
        assert client.get("/uploads", params={"api_key": "ev_wrong-guess"}).status_code == 401
        ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/stream"
        for query in (f"token={token}", f"api_key={key.secret}"):
            asyncio.run(_open_and_close(f"{ws_url}?{query}"))
    text = log.read_text()
    assert '"WebSocket /api/v1/stream?token=[redacted]" [accepted]' in text, text[-2000:]
    assert "GET /api/v1/uploads?api_key=[redacted]" in text, text[-2000:]
    for secret in (key.secret, token, "ev_wrong-guess"):
        assert secret not in text


async def _open_and_close(url: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "stop"}))  # not a start: the server closes (1007)
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
