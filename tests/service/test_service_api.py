"""The REST API in process (FastAPI TestClient) and the job runner without a queue.

Real audio, a real SQLite database and the real engine; only the worker process is absent, so
jobs are run with :func:`run_job` where a test needs a finished analysis.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from emotivoice.service.app import create_app
from emotivoice.service.jobs import Janitor
from emotivoice.service.runner import CALLBACK_SIGNATURE_HEADER, run_job
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store

API = "/api/v1"
LOCAL = "http://127.0.0.1"  # a loopback Host: with keys off the server answers only to those


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(home=tmp_path / "home", **overrides)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(base_url=LOCAL, app=create_app(_settings(tmp_path), janitor=False)) as c:
        yield c


def _upload(client: TestClient, path: Path, headers: dict[str, str] | None = None) -> Any:
    with path.open("rb") as f:
        return client.post(f"{API}/uploads", files={"file": (path.name, f)}, headers=headers)


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"] and "Traceback" not in body["message"]
    assert "/work/" not in body["message"] and "/tmp/" not in body["message"]
    return dict(body)


def test_health_ready_and_reference_routes(client: TestClient) -> None:
    health = client.get(f"{API}/health").json()
    assert health["database"] and health["queue"] and health["mode"] == "embedded"
    not_ready = client.get(f"{API}/ready")  # no worker has said it is alive
    assert not_ready.status_code == 503 and "No worker" in not_ready.json()["message"]
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    store.worker_alive("host:123")
    assert client.get(f"{API}/ready").status_code == 200
    emotions = client.get(f"{API}/emotions").json()
    assert emotions["granular_count"] == 18 and "happiness" in emotions["base"]
    assert emotions["granular"]["anger"]["high"] == "rage" and "arousal" in emotions["dimensions"]
    assert "de" in client.get(f"{API}/languages").json()["languages"]
    assert any(m["name"] == "base" for m in client.get(f"{API}/models").json()["whisper"])
    assert client.get(f"{API}/openapi.json").json()["info"]["title"] == "EmotiVoice"


def test_upload_is_sniffed_and_stored_under_a_generated_id(
    client: TestClient, jfk_path: Path
) -> None:
    with jfk_path.open("rb") as f:  # a misleading name does not matter: the content does
        response = client.post(f"{API}/uploads", files={"file": ("../../evil.txt", f)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == "flac" and abs(body["duration"] - 11.0) < 0.1
    assert body["filename"] == "evil.txt"
    listed = client.get(f"{API}/uploads").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    audio = client.get(f"{API}/uploads/{body['id']}/audio")
    assert audio.status_code == 200 and audio.content == jfk_path.read_bytes()


def test_bad_uploads_get_their_codes(tmp_path: Path, jfk_path: Path) -> None:
    settings = _settings(tmp_path, max_upload_mb=0.5)
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        _assert_error(_upload(client, jfk_path), 413, "FILE_TOO_LARGE")  # 1.1 MB
        text = tmp_path / "notes.wav"
        text.write_text("this is not audio at all, whatever the extension says\n" * 20)
        _assert_error(_upload(client, text), 415, "UNSUPPORTED_FORMAT")
        corrupt = tmp_path / "corrupt.flac"
        corrupt.write_bytes(jfk_path.read_bytes()[:42] + bytes(range(256)) * 100)
        _assert_error(_upload(client, corrupt), 422, "INVALID_AUDIO")
        empty = tmp_path / "empty.wav"
        empty.write_bytes(b"")
        _assert_error(_upload(client, empty), 422, "EMPTY_AUDIO")
        assert not list(settings.uploads_dir.iterdir())  # nothing half-stored


def test_chunked_upload_over_the_limit_is_refused_while_reading(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_upload_mb=0.1)
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        boundary = "b0undary"
        body = (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=a.wav\r\n"
                "Content-Type: audio/wav\r\n\r\n"
            ).encode()
            + b"RIFF"
            + bytes(400_000)
            + f"\r\n--{boundary}--\r\n".encode()
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            for i in range(0, len(body), 16384):
                yield body[i : i + 16384]

        response = client.post(
            f"{API}/uploads",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        _assert_error(response, 413, "FILE_TOO_LARGE")


def test_malformed_requests(client: TestClient, jfk_path: Path) -> None:
    upload = _upload(client, jfk_path).json()
    _assert_error(client.post(f"{API}/analyses", content=b"{not json"), 422, "VALIDATION_ERROR")
    _assert_error(
        client.post(f"{API}/analyses", json={"upload_id": upload["id"], "options": {"x": 1}}),
        422,
        "VALIDATION_ERROR",
    )
    _assert_error(
        client.post(
            f"{API}/analyses", json={"upload_id": upload["id"], "options": {"language": "xx"}}
        ),
        422,
        "INVALID_OPTIONS",
    )
    _assert_error(
        client.post(
            f"{API}/analyses",
            json={"upload_id": upload["id"], "options": {"emotion_model": "/etc/passwd"}},
        ),
        422,
        "INVALID_OPTIONS",
    )
    _assert_error(client.post(f"{API}/analyses", json={"upload_id": "nope"}), 404, "NOT_FOUND")
    _assert_error(client.get(f"{API}/analyses/nope"), 404, "NOT_FOUND")
    _assert_error(client.get(f"{API}/no/such/route"), 404, "NOT_FOUND")
    queued = client.post(f"{API}/analyses", json={"upload_id": upload["id"]}).json()
    _assert_error(client.get(f"{API}/analyses/{queued['id']}/export?format=pdf"), 409, "NOT_READY")
    _assert_error(
        client.get(f"{API}/analyses/{queued['id']}/export?format=exe"), 422, "VALIDATION_ERROR"
    )


def test_batch_queues_good_uploads_and_reports_bad_ones(client: TestClient, jfk_path: Path) -> None:
    upload = _upload(client, jfk_path).json()
    response = client.post(f"{API}/analyses/batch", json={"upload_ids": [upload["id"], "missing"]})
    assert response.status_code == 202
    items = response.json()["items"]
    assert items[0]["status"] == "queued" and items[1]["error"]["code"] == "NOT_FOUND"
    assert client.get(f"{API}/analyses?status=queued").json()["total"] == 1


def test_keys_isolate_owners_and_are_required(tmp_path: Path, jfk_path: Path) -> None:
    settings = _settings(tmp_path, require_api_key=True)
    store = Store(settings)
    alice, bob = store.create_key("alice"), store.create_key("bob")
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        _assert_error(client.get(f"{API}/uploads"), 401, "UNAUTHORIZED")
        _assert_error(
            client.get(f"{API}/uploads", headers={"X-API-Key": "ev_bad"}), 401, "UNAUTHORIZED"
        )
        a = {"X-API-Key": alice.secret}
        b = {"Authorization": f"Bearer {bob.secret}"}
        upload = _upload(client, jfk_path, a).json()
        analysis = client.post(f"{API}/analyses", json={"upload_id": upload["id"]}, headers=a)
        assert analysis.status_code == 202
        aid = analysis.json()["id"]
        # Bob sees none of it and cannot use or delete it.
        assert client.get(f"{API}/uploads", headers=b).json()["total"] == 0
        assert client.get(f"{API}/analyses", headers=b).json()["total"] == 0
        _assert_error(client.get(f"{API}/uploads/{upload['id']}", headers=b), 404, "NOT_FOUND")
        _assert_error(client.get(f"{API}/analyses/{aid}", headers=b), 404, "NOT_FOUND")
        _assert_error(client.delete(f"{API}/analyses/{aid}", headers=b), 404, "NOT_FOUND")
        _assert_error(
            client.post(f"{API}/analyses", json={"upload_id": upload["id"]}, headers=b),
            404,
            "NOT_FOUND",
        )
        assert client.get(f"{API}/analyses/{aid}", headers=a).json()["status"] == "queued"
        store.revoke_key(alice.id)
        _assert_error(client.get(f"{API}/uploads", headers=a), 401, "UNAUTHORIZED")
    assert all(len(k.key_hash) == 64 and k.key_hash != alice.secret for k in store.list_keys())


def test_rate_limit_answers_429(tmp_path: Path) -> None:
    with TestClient(
        base_url=LOCAL, app=create_app(_settings(tmp_path, rate_limit_per_minute=3), janitor=False)
    ) as c:
        assert [c.get(f"{API}/uploads").status_code for _ in range(3)] == [200] * 3
        response = c.get(f"{API}/uploads")
        _assert_error(response, 429, "RATE_LIMITED")
        assert int(response.headers["Retry-After"]) >= 1


class _Callbacks(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012 - test-local capture

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Callbacks.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _wait_callback(client: TestClient, analysis_id: str, status: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"{API}/analyses/{analysis_id}").json()["callback_status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"callback of {analysis_id} never became {status}")


@pytest.mark.slow
def test_job_runs_once_writes_exports_and_signs_its_callback(
    tmp_path: Path, jfk_path: Path
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Callbacks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = _settings(
        tmp_path,
        callback_secret="s3cret",
        callback_allowed_hosts=["127.0.0.1"],  # the test's receiver is on loopback
        callback_allow_http=True,
    )
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        upload = _upload(client, jfk_path).json()
        aid = client.post(
            f"{API}/analyses",
            json={
                "upload_id": upload["id"],
                "callback_url": f"http://127.0.0.1:{server.server_port}/hook",
            },
        ).json()["id"]
        assert run_job(store, aid, 0, "test-worker") == "completed"
        assert run_job(store, aid, 0, "test-worker") == "skipped"  # a redelivery is a no-op
        _wait_callback(client, aid, "delivered")
        assert not store.complete(aid, 0, {"text": "overwrite"})  # finished results are final
        status = client.get(f"{API}/analyses/{aid}").json()
        assert status["status"] == "completed" and status["progress"] == 100
        assert "fellow Americans" in status["result"]["text"]
        assert len(status["segments"]) == len(status["result"]["segments"]) >= 1
        assert status["dominant_emotion"] in status["result"]["emotion"]["distribution"]
        exported = client.get(f"{API}/analyses/{aid}/export?format=json").json()
        assert exported["text"] == status["result"]["text"]
        csv_text = client.get(f"{API}/analyses/{aid}/export?format=csv").text
        assert "fellow Americans" in csv_text and "emotion" in csv_text.splitlines()[0]
        pdf = client.get(f"{API}/analyses/{aid}/export?format=pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        from pypdf import PdfReader

        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert "fellow Americans" in text and "Transcript" in text
        # the report and the result name the recording as it was uploaded, not by its id
        assert status["result"]["source"]["name"] == "jfk.flac" and "jfk.flac" in text
        # an analysis stored before a format existed gets it written from its analysis.json
        [folder] = store.artefact_dir(aid).glob("attempt-*")
        srt = client.get(f"{API}/analyses/{aid}/export?format=srt").text
        # subtitles cut otherwise on request: one line of at most 20 characters a cue
        narrow = client.get(
            f"{API}/analyses/{aid}/export?format=srt&max_line_width=20&max_line_count=1"
        )
        assert narrow.headers["content-type"].startswith("application/x-subrip")
        cues = narrow.text.strip().split("\n\n")
        assert len(cues) > srt.count(" --> ")
        assert all(len(c.split("\n")) == 3 and len(c.split("\n")[2]) <= 20 + 12 for c in cues)
        _assert_error(
            client.get(f"{API}/analyses/{aid}/export?format=vtt&max_line_count=0"),
            422,
            "VALIDATION_ERROR",
        )
        for name in ("analysis.srt", "report.pdf"):
            (folder / name).unlink()
        assert client.get(f"{API}/analyses/{aid}/export?format=srt").text == srt
        assert (folder / "analysis.srt").is_file() and not list(folder.glob(".*"))
        pdf = client.get(f"{API}/analyses/{aid}/export?format=pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        (folder / "analysis.json").write_text("{broken")
        (folder / "analysis.vtt").unlink()
        _assert_error(
            client.get(f"{API}/analyses/{aid}/export?format=vtt"), 500, "RESULT_UNREADABLE"
        )
        (folder / "analysis.json").unlink()
        _assert_error(client.get(f"{API}/analyses/{aid}/export?format=vtt"), 404, "NOT_FOUND")
        _assert_error(client.get(f"{API}/analyses/{aid}/explanations"), 404, "NOT_FOUND")
        assert client.delete(f"{API}/analyses/{aid}").json()["status"] == "cancelled"
        gone = client.get(f"{API}/analyses/{aid}").json()
        assert gone["status"] == "cancelled" and gone["result"] is None
        assert not store.artefact_dir(aid).exists()
    server.shutdown()
    headers, body = _Callbacks.received[-1]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[CALLBACK_SIGNATURE_HEADER] == expected
    notice = json.loads(body)
    assert notice["id"] == aid and notice["status"] == "completed"
    assert "fellow Americans" in notice["text"]


def test_bad_audio_job_fails_with_code_and_janitor_requeues_stalled_jobs(
    tmp_path: Path, jfk_path: Path
) -> None:
    settings = _settings(tmp_path, stale_after_s=0.2, max_attempts=2)
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        upload = _upload(client, jfk_path.parent / "hotwords.mp3").json()
        # The stored file is damaged after upload: the job fails with a code, not a traceback.
        aid = client.post(f"{API}/analyses", json={"upload_id": upload["id"]}).json()["id"]
        store.upload_path(upload["id"]).write_bytes(b"garbage")
        assert run_job(store, aid, 0, "w") == "failed"
        failed = client.get(f"{API}/analyses/{aid}").json()
        assert failed["error"]["code"] == "INVALID_AUDIO" and "Traceback" not in str(failed)
        # A job claimed by a worker that then died: the janitor hands it to a new delivery.
        aid2 = client.post(f"{API}/analyses", json={"upload_id": upload["id"]}).json()["id"]
        assert store.claim(aid2, 0, "dead-worker") is not None
        import time

        time.sleep(0.5)
        janitor = Janitor(store, client.app.state.services.celery)  # type: ignore[attr-defined]
        assert janitor.sweep() == 1
        row = store.get_analysis("anonymous", aid2)
        assert row.status == "queued" and row.attempt == 1
        assert not store.heartbeat(aid2, 0)  # the dead delivery is fenced out
        assert store.claim(aid2, 0, "late-redelivery") is None
        assert store.claim(aid2, 1, "new-worker") is not None
        time.sleep(0.5)
        assert janitor.sweep() == 0  # max_attempts reached: the job fails instead
        assert store.get_analysis("anonymous", aid2).error_code == "WORKER_LOST"


def test_settings_from_yaml_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emotivoice.errors import InvalidConfigError

    config = tmp_path / "emotivoice.yaml"
    config.write_text("max_upload_mb: 5\nrate_limit_per_minute: 7\ncors_origins: [http://a.b]\n")
    monkeypatch.setenv("EMOTIVOICE_CONFIG", str(config))
    monkeypatch.setenv("EMOTIVOICE_RATE_LIMIT_PER_MINUTE", "9")  # the environment wins
    settings = load_settings(home=tmp_path)
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.rate_limit_per_minute == 9 and settings.cors_origins == ["http://a.b"]
    assert settings.db_url.startswith("sqlite:///") and settings.embedded_queue
    config.write_text("max_upload_mb: -1\n")
    with pytest.raises(InvalidConfigError, match="max_upload_mb"):
        load_settings(home=tmp_path)
    config.write_text("no_such_setting: 1\n")
    with pytest.raises(InvalidConfigError, match="no_such_setting"):
        load_settings(home=tmp_path)


@pytest.mark.slow
def test_callbacks_need_a_secret(tmp_path: Path, short_wav: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Callbacks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_port}/hook"
    before = len(_Callbacks.received)
    with TestClient(base_url=LOCAL, app=create_app(_settings(tmp_path), janitor=False)) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        upload = _upload(client, short_wav).json()
        refused = client.post(
            f"{API}/analyses", json={"upload_id": upload["id"], "callback_url": hook}
        )
        body = _assert_error(refused, 422, "CALLBACKS_NOT_CONFIGURED")
        assert "EMOTIVOICE_CALLBACK_SECRET" in body["message"]
        batch = {"upload_ids": [upload["id"]], "callback_url": hook}
        _assert_error(
            client.post(f"{API}/analyses/batch", json=batch), 422, "CALLBACKS_NOT_CONFIGURED"
        )
        assert client.get(f"{API}/analyses").json()["total"] == 0  # nothing was queued
        assert client.post(f"{API}/analyses", json={"upload_id": upload["id"]}).status_code == 202
        # A job that has a callback URL (queued by an API that had a secret) on a worker without
        # one: the notice is not sent signed with an empty key.
        options = {"features": False, "emotion": False}
        row = store.create_analysis("anonymous", upload["id"], options, hook)
        assert run_job(store, row.id, 0, "worker-without-secret") == "completed"
        done = client.get(f"{API}/analyses/{row.id}").json()
        assert done["status"] == "completed" and "fellow" in done["result"]["text"]
        assert done["callback_status"] == "failed"
    server.shutdown()
    assert len(_Callbacks.received) == before


def test_keys_cli_creates_lists_and_revokes_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    from emotivoice.cli import EXIT_FAILED, EXIT_OK, main

    home = ["--home", str(tmp_path / "home")]
    assert main(["keys", "create", "analyst", *home]) == EXIT_OK
    created = capsys.readouterr().out
    key_id = re.search(r"^id\s+(\w+)$", created, re.MULTILINE)
    secret = re.search(r"^secret\s+(ev_\S+)$", created, re.MULTILINE)
    assert key_id and secret, created
    key_id_text, headers = key_id[1], {"X-API-Key": secret[1]}
    settings = _settings(tmp_path, require_api_key=True)
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        assert client.get(f"{API}/uploads", headers=headers).status_code == 200
        _assert_error(client.get(f"{API}/uploads"), 401, "UNAUTHORIZED")
        assert main(["keys", "list", *home]) == EXIT_OK
        listed = capsys.readouterr().out
        assert key_id_text in listed and "active" in listed and "analyst" in listed
        assert secret[1] not in listed  # only a prefix is ever shown again
        assert main(["keys", "revoke", key_id_text, *home]) == EXIT_OK
        assert capsys.readouterr().out.strip() == f"revoked {key_id_text}"
        _assert_error(client.get(f"{API}/uploads", headers=headers), 401, "UNAUTHORIZED")
    assert main(["keys", "list", *home]) == EXIT_OK
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "revoke", "no-such-key", *home]) == EXIT_FAILED
    assert "No API key with id no-such-key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["keys", "revoke", *home])
    assert usage.value.code == 2 and "needs the key id" in capsys.readouterr().err


def test_cors_answers_only_configured_origins(tmp_path: Path) -> None:
    allowed, other = "http://app.example:3000", "http://elsewhere.example"
    settings = _settings(tmp_path, cors_origins=[allowed], max_upload_mb=0.01)
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        ok = client.get(f"{API}/health", headers={"Origin": allowed})
        assert ok.headers["access-control-allow-origin"] == allowed
        refused = client.get(f"{API}/health", headers={"Origin": other})
        # with keys off a page of another origin is refused outright (403), CORS or not
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
        ask = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        }
        preflight = client.options(f"{API}/analyses", headers={"Origin": allowed, **ask})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        denied = client.options(f"{API}/analyses", headers={"Origin": other, **ask})
        assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
        # Errors reach a browser client too, even the upload limit's early 413.
        big = client.post(
            f"{API}/uploads",
            files={"file": ("big.wav", b"RIFF" + bytes(100_000))},
            headers={"Origin": allowed},
        )
        _assert_error(big, 413, "FILE_TOO_LARGE")
        assert big.headers["access-control-allow-origin"] == allowed
    with TestClient(
        base_url=LOCAL, app=create_app(_settings(tmp_path / "no-cors"), janitor=False)
    ) as client:
        plain = client.get(f"{API}/health", headers={"Origin": allowed})
        assert "access-control-allow-origin" not in plain.headers


def test_docs_pages_load_without_internet(client: TestClient) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        assert "http://" not in html.text and "https://" not in html.text, html.text
        refs = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
        for ref in refs:
            asset = client.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 1000, ref
    swagger = client.get("/docs").text
    assert f"url: '{API}/openapi.json'" in swagger
    bundle = client.get(re.findall(r'src="([^"]+swagger-ui-bundle\.js)"', swagger)[0])
    assert "SwaggerUIBundle" in bundle.text
    assert "javascript" in bundle.headers["content-type"]


def test_explanation_options_are_checked_before_queueing(
    client: TestClient, jfk_path: Path
) -> None:
    upload = _upload(client, jfk_path).json()

    def create(options: dict[str, Any]) -> Any:
        return client.post(f"{API}/analyses", json={"upload_id": upload["id"], "options": options})

    # 10 windows need at least 29 evaluations beside the 8 counterfactuals
    refused = create({"explain": True, "explain_windows": 10, "explain_budget": 30})
    assert "budget" in _assert_error(refused, 422, "INVALID_OPTIONS")["message"]
    _assert_error(create({"explain": True, "explain_budget": 0}), 422, "VALIDATION_ERROR")
    _assert_error(create({"explain": True, "explain_methods": ["magic"]}), 422, "INVALID_OPTIONS")
    # without explain, only the method names are checked (the budget is not used)
    _assert_error(create({"explain": False, "explain_methods": ["magic"]}), 422, "INVALID_OPTIONS")
    unused = create({"explain": False, "explain_methods": ["shapley"], "explain_budget": 10})
    assert unused.status_code == 202, unused.text
    queued = create({"explain": True, "explain_windows": 4, "explain_budget": 24})
    assert queued.status_code == 202, queued.text
    options = client.get(f"{API}/analyses/{queued.json()['id']}").json()["options"]
    assert options["explain_budget"] == 24 and options["explain_windows"] == 4
    default = create({"explain": True})
    assert (
        client.get(f"{API}/analyses/{default.json()['id']}").json()["options"]["explain_budget"]
        == 100
    )
