"""Schemathesis drives every operation of the OpenAPI schema with generated requests: the API
must never answer 5xx, and every error body is ``{code, message}``."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from emotivoice.service.app import create_app
from emotivoice.service.settings import load_settings

API = "/api/v1"
_HOME = Path(tempfile.mkdtemp(prefix="emotivoice-fuzz-"))
# schemathesis calls the ASGI app as host "testserver"
settings_ = load_settings(home=_HOME, rate_limit_per_minute=0, allowed_hosts=["testserver"])
app = create_app(settings_, janitor=False)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: Any) -> None:
    response = case.call()
    if case.path == "/api/v1/ready" and response.status_code == 503:
        # documented: no worker runs beside this app, so it is not ready
        assert response.json()["code"] == "NOT_READY"
        return
    assert response.status_code < 500, (case.path, case.method, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message"} and body["code"].isupper(), body


# --- stateful: real audio through the whole API, with keys on --------------------------------


@pytest.mark.slow
def test_stateful_upload_analyse_read_with_keys(
    tmp_path_factory: pytest.TempPathFactory, short_wav: Path, jfk_path: Path
) -> None:
    """Hypothesis drives sequences of real calls (upload real audio, analyse, run the job, read
    status, exports and uploads, delete) for two keys: no 5xx, every error ``{code, message}``,
    and one key never sees or touches the other's data."""
    from fastapi.testclient import TestClient
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        Bundle,
        RuleBasedStateMachine,
        initialize,
        invariant,
        rule,
        run_state_machine_as_test,
    )

    from emotivoice.service.runner import run_job
    from emotivoice.service.storage import Store

    home = tmp_path_factory.mktemp("stateful-home")
    keyed = load_settings(home=home, require_api_key=True, rate_limit_per_minute=0)
    store = Store(keyed)
    keys = [store.create_key(name).secret for name in ("alice", "bob")]
    client = TestClient(create_app(keyed, janitor=False), base_url="http://127.0.0.1")
    # An empty file name makes the part a form field (1 MB limit, 400): see docs/security.md.
    names = st.text(min_size=1, max_size=40)
    fast = st.fixed_dictionaries(
        {"features": st.booleans(), "emotion": st.just(False)},
        optional={
            "language": st.sampled_from(["en", "de", "xx", ""]),
            "beam_size": st.integers(-1, 12),
            "model": st.sampled_from(["base", "nope"]),
        },
    )

    def check(response: Any) -> Any:
        assert response.status_code < 500, response.text[:500]
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"code", "message"} and body["code"].isupper(), body
        return response

    class Service(RuleBasedStateMachine):
        uploads = Bundle("uploads")
        analyses = Bundle("analyses")

        @initialize(target=analyses)
        def a_finished_analysis(self) -> tuple[int, str]:
            """Every run starts from one real result (upload, analyse, run the job)."""
            headers = {"X-API-Key": keys[0]}
            with short_wav.open("rb") as f:
                upload = check(
                    client.post(f"{API}/uploads", files={"file": ("a.wav", f)}, headers=headers)
                ).json()
            body = {"upload_id": upload["id"], "options": {"features": False, "emotion": False}}
            created = check(client.post(f"{API}/analyses", json=body, headers=headers)).json()
            ran.append(run_job(store, created["id"], 0, "stateful-worker"))
            return 0, str(created["id"])

        @rule(target=uploads, who=st.sampled_from([0, 1]), name=names, clip=st.booleans())
        def upload(self, who: int, name: str, clip: bool) -> tuple[int, str]:
            path = short_wav if clip else jfk_path.parent / "hotwords.mp3"  # 3 s and 4 s
            with path.open("rb") as f:
                response = check(
                    client.post(
                        f"{API}/uploads",
                        files={"file": (name, f)},
                        headers={"X-API-Key": keys[who]},
                    )
                )
            assert response.status_code == 201, response.text
            return who, str(response.json()["id"])

        @rule(target=analyses, upload=uploads, who=st.sampled_from([0, 1]), options=fast)
        def analyse(self, upload: tuple[int, str], who: int, options: dict[str, Any]) -> Any:
            owner, upload_id = upload
            response = check(
                client.post(
                    f"{API}/analyses",
                    json={"upload_id": upload_id, "options": options},
                    headers={"X-API-Key": keys[who]},
                )
            )
            if who != owner:  # another key's upload does not exist (or the options are bad)
                assert response.status_code in (404, 422), response.text
            if response.status_code != 202:
                return (who, "missing")
            return who, str(response.json()["id"])

        @rule(analysis=analyses)
        def run(self, analysis: tuple[int, str]) -> None:
            _, analysis_id = analysis
            if analysis_id != "missing":
                outcome = run_job(store, analysis_id, 0, "stateful-worker")
                ran.append(outcome)

        @rule(
            analysis=analyses,
            who=st.sampled_from([0, 1]),
            fmt=st.sampled_from(["json", "csv", "srt", "vtt", "exe"]),
        )
        def read(self, analysis: tuple[int, str], who: int, fmt: str) -> None:
            owner, analysis_id = analysis
            headers = {"X-API-Key": keys[who]}
            status = check(client.get(f"{API}/analyses/{analysis_id}", headers=headers))
            export = check(
                client.get(f"{API}/analyses/{analysis_id}/export?format={fmt}", headers=headers)
            )
            if analysis_id == "missing" or who != owner:
                assert status.status_code == 404 and export.status_code in (404, 422)
            elif status.json()["status"] == "completed" and fmt != "exe":
                assert export.status_code == 200

        @rule(upload=uploads, who=st.sampled_from([0, 1]))
        def delete(self, upload: tuple[int, str], who: int) -> None:
            owner, upload_id = upload
            response = check(
                client.delete(f"{API}/uploads/{upload_id}", headers={"X-API-Key": keys[who]})
            )
            if who != owner:
                assert response.status_code == 404

        @invariant()
        def keys_see_only_their_own(self) -> None:
            for who in (0, 1):
                listed = check(
                    client.get(f"{API}/uploads?limit=200", headers={"X-API-Key": keys[who]})
                )
                mine = {u["id"] for u in listed.json()["items"]}
                other = store.list_uploads(store.key_owner(keys[1 - who]) or "", 200, 0)[0]
                assert not mine & {u.id for u in other}

    ran: list[str] = []
    with client:
        run_state_machine_as_test(
            Service,
            settings=settings(
                max_examples=6,
                stateful_step_count=10,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    assert "completed" in ran, ran  # the runs reached real results, not only errors


# --- the WebSocket: malformed frames, wrong order, oversize ---------------------------------


@pytest.mark.slow
def test_websocket_fuzz_gets_documented_close_codes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Hypothesis sends sequences of good and bad messages; the server always ends the session
    with a documented close code and error codes, and stays healthy for the next client."""
    import asyncio
    import json

    import httpx
    from hypothesis import given
    from hypothesis import strategies as st

    from emotivoice.service.local_server import serve
    from emotivoice.service.stream import CLOSE_CODES

    pytest.importorskip("websockets")
    home = tmp_path_factory.mktemp("ws-fuzz-home")
    fuzz_settings = load_settings(
        home=home,
        rate_limit_per_minute=0,
        stream_max_frame_bytes=8192,
        stream_idle_timeout_s=2.0,
        max_streams=0,
    )
    start = {"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000}
    texts = st.one_of(
        st.just(json.dumps(start)),
        st.just(json.dumps({"type": "stop"})),
        st.just(json.dumps({**start, "encoding": "mp3-ish"})),
        st.just(json.dumps({**start, "sample_rate": -5})),
        st.just(json.dumps({**start, "surprise": 1})),
        st.just('{"type": "start"'),  # cut JSON
        st.just("[1, 2, 3]"),
        st.text(max_size=50),
    )
    frames = st.one_of(
        st.binary(min_size=1, max_size=4000),
        st.just(bytes(2 * 1600)),  # 100 ms of silence
        st.just(bytes(9000)),  # over the frame limit
    )
    messages = st.lists(st.one_of(texts, frames), min_size=0, max_size=8)
    documented = set(CLOSE_CODES.values())
    known_codes = {
        "PROTOCOL_ERROR",
        "UNSUPPORTED_FORMAT",
        "FRAME_TOO_LARGE",
        "INVALID_AUDIO",
        "STREAM_IDLE",
        "STREAM_TOO_LONG",
        "INVALID_OPTIONS",
    }

    async def session(url: str, sent: list[str | bytes]) -> tuple[int, list[dict[str, Any]]]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        events: list[dict[str, Any]] = []
        async with connect(url) as ws:
            for message in sent:
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    break
            else:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"type": "stop"}))
            with contextlib.suppress(ConnectionClosed):
                async for reply in ws:
                    events.append(json.loads(reply))
            return ws.close_code or 0, events

    with serve(create_app(fuzz_settings, janitor=False)) as base:
        url = base.replace("http://", "ws://") + "/api/v1/stream"

        @given(messages)
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(sent: list[str | bytes]) -> None:
            code, events = asyncio.run(asyncio.wait_for(session(url, sent), 60))
            assert code in documented and code != CLOSE_CODES["internal_error"], (code, sent[:3])
            errors = {e["code"] for e in events if e.get("type") == "error"}
            assert errors <= known_codes, errors
            assert all("Traceback" not in json.dumps(e) for e in events)

        fuzz()
        # healthy afterwards: the API answers and a well-formed stream still works
        assert httpx.get(f"{base}/api/v1/health").json()["database"]
        code, events = asyncio.run(
            asyncio.wait_for(session(url, [json.dumps(start), bytes(3200)]), 60)
        )
        assert code == 1000 and any(e["type"] == "stats" for e in events), events
