"""Quotas and limits that stop requests from multiplying (issue 26, items 7 and 14): batches,
queued jobs, live streams (count, idle time, intake speed), revoked keys. Real app, real sockets
on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from emotivoice.service.app import create_app
from emotivoice.service.local_server import serve
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store

API = "/api/v1"
LOCAL = "http://127.0.0.1"
START = json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000})


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(home=tmp_path / "home", **overrides)


def _upload(client: TestClient, path: Path, headers: dict[str, str] | None = None) -> str:
    with path.open("rb") as f:
        response = client.post(f"{API}/uploads", files={"file": ("a.wav", f)}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_batch_counts_each_analysis_and_each_upload_once(tmp_path: Path, short_wav: Path) -> None:
    settings = _settings(tmp_path, rate_limit_per_minute=10, max_active_jobs=0)
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        upload = _upload(client, short_wav)  # 1 request
        batch = client.post(f"{API}/analyses/batch", json={"upload_ids": [upload] * 100})
        assert batch.status_code == 202, batch.text  # 1 request + 0 more: one distinct id
        assert [i["upload_id"] for i in batch.json()["items"]] == [upload]
        second = _upload(client, short_wav)  # 3
        many = client.post(
            f"{API}/analyses/batch",
            json={"upload_ids": [upload, second] + [f"x{i}" for i in range(8)]},
        )  # 10 analyses: 4 + 9 > 10
        assert many.status_code == 429 and many.json()["code"] == "RATE_LIMITED", many.text
        assert client.get(f"{API}/analyses").status_code == 200  # 4 of 10 used
        assert client.get(f"{API}/analyses").json()["total"] == 1  # the refused batch queued none


def test_queued_jobs_have_a_quota_per_key(tmp_path: Path, short_wav: Path) -> None:
    settings = _settings(tmp_path, require_api_key=True, max_active_jobs=2)
    store = Store(settings)
    alice, bob = store.create_key("alice"), store.create_key("bob")
    a, b = {"X-API-Key": alice.secret}, {"X-API-Key": bob.secret}
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        upload = _upload(client, short_wav, a)
        first = client.post(f"{API}/analyses", json={"upload_id": upload}, headers=a).json()
        client.post(f"{API}/analyses", json={"upload_id": upload}, headers=a)
        full = client.post(f"{API}/analyses", json={"upload_id": upload}, headers=a)
        assert full.status_code == 429 and full.json()["code"] == "QUOTA_EXCEEDED", full.text
        assert "Retry-After" in full.headers
        batch = client.post(f"{API}/analyses/batch", json={"upload_ids": [upload]}, headers=a)
        assert batch.json()["items"][0]["error"]["code"] == "QUOTA_EXCEEDED"
        bobs = _upload(client, short_wav, b)  # another key has its own quota
        assert (
            client.post(f"{API}/analyses", json={"upload_id": bobs}, headers=b).status_code == 202
        )
        client.delete(f"{API}/analyses/{first['id']}", headers=a)  # a cancelled job frees a place
        again = client.post(f"{API}/analyses", json={"upload_id": upload}, headers=a)
        assert again.status_code == 202


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    home = tmp_path_factory.mktemp("quota-home")
    settings = load_settings(
        home=home,
        require_api_key=True,
        max_streams=1,
        stream_idle_timeout_s=1.5,
        stream_max_speed=10.0,
        stream_burst_s=5.0,
        stream_check_interval_s=0.5,
        stream_max_backlog_s=120.0,
    )
    with serve(create_app(settings, janitor=False)) as base:
        yield base.replace("http://", "ws://") + f"{API}/stream", Store(settings)


async def _session(url: str, key: str, *messages: str | bytes, hold: float = 0.0) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    events: list[dict[str, Any]] = []
    started = time.monotonic()
    async with connect(url, additional_headers={"X-API-Key": key}) as ws:
        for message in messages:
            try:
                await ws.send(message)
            except ConnectionClosed:
                break
        if hold:
            await asyncio.sleep(hold)
        try:
            async for reply in ws:
                events.append(json.loads(reply))
        except ConnectionClosed:
            pass
        return {"events": events, "code": ws.close_code, "seconds": time.monotonic() - started}


def _codes(result: dict[str, Any]) -> list[str]:
    return [e["code"] for e in result["events"] if e["type"] == "error"]


def test_an_idle_stream_is_closed(keyed_server: tuple[str, Store]) -> None:
    url, store = keyed_server
    key = store.create_key("idle").secret
    result = asyncio.run(asyncio.wait_for(_session(url, key, START), 30))
    assert result["code"] == 1008 and _codes(result) == ["STREAM_IDLE"], result
    assert result["seconds"] < 10


def test_a_key_has_at_most_its_streams_open(keyed_server: tuple[str, Store]) -> None:
    url, store = keyed_server
    key = store.create_key("two-tabs").secret

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        first = asyncio.create_task(_session(url, key, START))  # idles out after 1.5 s
        await asyncio.sleep(0.5)
        second = await _session(url, key, START)
        return await first, second

    first, second = asyncio.run(asyncio.wait_for(both(), 30))
    assert second["code"] == 1008 and _codes(second) == ["QUOTA_EXCEEDED"], second
    assert _codes(first) == ["STREAM_IDLE"]
    # the slot is free again once the first stream ended
    third = asyncio.run(asyncio.wait_for(_session(url, key, START), 30))
    assert _codes(third) == ["STREAM_IDLE"]


def test_a_stream_is_taken_no_faster_than_its_speed_limit(
    keyed_server: tuple[str, Store],
) -> None:
    url, store = keyed_server
    key = store.create_key("fast").secret
    silence = np.zeros(16000, dtype="<i2").tobytes()  # 1 s frames, nothing for the models to do
    frames = [silence] * 40  # 40 s at once: (40 - 5) / 10 = 3.5 s at 10x real time
    stop = json.dumps({"type": "stop"})
    result = asyncio.run(asyncio.wait_for(_session(url, key, START, *frames, stop), 60))
    assert result["code"] == 1000, result
    assert result["seconds"] >= 3.4, result["seconds"]
    assert any(e["type"] == "stats" and e.get("throttled") for e in result["events"])


def test_revoking_a_key_ends_its_open_streams(keyed_server: tuple[str, Store]) -> None:
    url, store = keyed_server
    made = store.create_key("revoked")
    chunk = np.zeros(1600, dtype="<i2").tobytes()

    async def talk() -> dict[str, Any]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        events: list[dict[str, Any]] = []
        async with connect(url, additional_headers={"X-API-Key": made.secret}) as ws:
            await ws.send(START)
            store.revoke_key(made.id)
            started = time.monotonic()
            try:
                while time.monotonic() - started < 10:  # keeps sending: never idle
                    await ws.send(chunk)
                    with_reply = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait({with_reply}, timeout=0.1)
                    if done:
                        events.append(json.loads(with_reply.result()))
                    else:
                        with_reply.cancel()
            except ConnectionClosed:
                pass
            return {"events": events, "code": ws.close_code, "after": time.monotonic() - started}

    result = asyncio.run(asyncio.wait_for(talk(), 30))
    assert result["code"] == 1008 and "UNAUTHORIZED" in _codes(result), result
    assert result["after"] < 5


def test_with_redis_every_api_process_shares_the_limits(tmp_path: Path) -> None:
    """Two API processes behind a proxy (two sets of services on one Redis) count together."""
    import uuid

    import redis

    from emotivoice.service.auth import RateLimiter, limiter_storage_url
    from emotivoice.service.errors import QuotaExceededError, RateLimitedError
    from emotivoice.service.quotas import StreamSlots

    url = "redis://127.0.0.1:6379/8"
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running (bash scripts/ensure_services.sh)")
    scale_out = _settings(tmp_path, broker_url=url)
    assert limiter_storage_url(scale_out) == url  # Redis when the deployment has it
    assert limiter_storage_url(_settings(tmp_path)) == "memory://"
    who = f"test-{uuid.uuid4().hex}"
    first, second = RateLimiter(3, url), RateLimiter(3, url)
    first.check(who)
    second.check(who)
    first.check(who)
    with pytest.raises(RateLimitedError):
        second.check(who)  # the other process' requests counted
    a, b = StreamSlots(1, url), StreamSlots(1, url)
    slot = a.acquire(who)
    with pytest.raises(QuotaExceededError):
        b.acquire(who)
    a.release(who, slot)
    b.release(who, b.acquire(who))
