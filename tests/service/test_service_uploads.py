"""Uploads under attack (issue 26): long recordings checked in flat memory, file names, leftovers,
storage quotas. Real audio files, a real SQLite database, the real app in process."""

from __future__ import annotations

import os
import time
import tracemalloc
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from emotivoice.service.app import create_app
from emotivoice.service.jobs import Janitor
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store, display_name

API = "/api/v1"
LOCAL = "http://127.0.0.1"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(home=tmp_path / "home", **overrides)


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["code"] == code and "Traceback" not in body["message"]
    return dict(body)


def long_low_rate_wav(path: Path, seconds: float) -> Path:
    """The worst case per byte: 8-bit mono at 1 kHz (a 16 kHz float decode is 64x its size)."""
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(1000)
        w.writeframes(rng.integers(100, 156, int(seconds * 1000), dtype=np.uint8).tobytes())
    return path


def test_a_long_upload_is_checked_without_decoding_it(tmp_path: Path) -> None:
    wav = long_low_rate_wav(tmp_path / "hour.wav", 3600.0)  # 3.6 MB; 230 MB decoded at 16 kHz
    store = Store(_settings(tmp_path))
    tracemalloc.start()
    try:
        with wav.open("rb") as f:
            row = store.create_upload("anonymous", f, "hour.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(row.duration - 3600.0) < 0.5 and row.format == "wav" and row.sample_rate == 1000
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB while checking the upload"


def test_upload_errors_name_the_users_file_and_limits_still_hold(
    tmp_path: Path, jfk_path: Path
) -> None:
    settings = _settings(tmp_path, max_duration_s=1800)
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        corrupt = tmp_path / "x.flac"
        corrupt.write_bytes(jfk_path.read_bytes()[:42] + bytes(range(256)) * 100)
        with corrupt.open("rb") as f:
            response = client.post(f"{API}/uploads", files={"file": ("Interview 3.flac", f)})
        message = _assert_error(response, 422, "INVALID_AUDIO")["message"]
        assert message.startswith("Interview 3.flac:") and ".part" not in message
        cut = tmp_path / "cut.flac"
        cut.write_bytes(jfk_path.read_bytes()[: jfk_path.stat().st_size // 2])
        with cut.open("rb") as f:
            response = client.post(f"{API}/uploads", files={"file": ("cut.flac", f)})
        assert "truncated" in _assert_error(response, 422, "INVALID_AUDIO")["message"]
        long = long_low_rate_wav(tmp_path / "long.wav", 2000.0)
        with long.open("rb") as f:
            response = client.post(f"{API}/uploads", files={"file": ("long.wav", f)})
        assert "33.3 min" in _assert_error(response, 422, "AUDIO_TOO_LONG")["message"]
        assert not list(settings.uploads_dir.iterdir())


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("Ünïcødé-日本語-🎤.flac", "Ünïcødé-日本語-🎤.flac"),
        ("U\u0308ber.wav", "Über.wav"),  # NFC
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\talk.m4a", "talk.m4a"),
        ("bell\x07\u202etxt.exe.wav", "belltxt.exe.wav"),  # control and bidi override go
        ("notes*v2?.mp3", "notes_v2_.mp3"),
        ("é" * 5000 + ".flac", "é" * 195 + ".flac"),  # cut, extension kept
        ("", "upload"),
        ("...", "upload"),
    ],
)
def test_file_names_stay_readable_and_harmless(given: str, shown: str) -> None:
    assert display_name(given) == shown
    assert len(display_name(given)) <= 200


def test_half_written_uploads_are_cleaned_up(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        old = settings.uploads_dir / "0123456789abcdef.part"  # a server killed mid-upload
        old.write_bytes(b"RIFF" + bytes(1000))
        two_hours_ago = time.time() - 7200
        os.utime(old, (two_hours_ago, two_hours_ago))
        fresh = settings.uploads_dir / "fedcba9876543210.part"  # an upload in progress
        fresh.write_bytes(b"RIFF")
        janitor = Janitor(store, client.app.state.services.celery)  # type: ignore[attr-defined]
        janitor.sweep()
        assert not old.exists() and fresh.exists()


def test_stored_audio_has_a_quota_per_key(tmp_path: Path, short_wav: Path) -> None:
    size_mb = short_wav.stat().st_size / 1024 / 1024
    settings = _settings(tmp_path, require_api_key=True, max_stored_mb=size_mb * 2.5)
    store = Store(settings)
    alice, bob = store.create_key("alice"), store.create_key("bob")

    def upload(client: TestClient, key: str) -> Any:
        with short_wav.open("rb") as f:
            return client.post(
                f"{API}/uploads", files={"file": ("a.wav", f)}, headers={"X-API-Key": key}
            )

    with TestClient(create_app(settings, janitor=False), base_url=LOCAL) as client:
        first = upload(client, alice.secret).json()
        assert upload(client, alice.secret).status_code == 201
        full = _assert_error(upload(client, alice.secret), 413, "STORAGE_QUOTA_EXCEEDED")
        assert "delete uploads" in full["message"]
        assert upload(client, bob.secret).status_code == 201  # each key has its own quota
        client.delete(f"{API}/uploads/{first['id']}", headers={"X-API-Key": alice.secret})
        assert upload(client, alice.secret).status_code == 201


def test_a_file_name_too_long_for_the_multipart_parser_is_explained(
    tmp_path: Path, short_wav: Path
) -> None:
    with TestClient(create_app(_settings(tmp_path), janitor=False), base_url=LOCAL) as client:
        with short_wav.open("rb") as f:  # 6 KB of file name: over the parser's header limit
            response = client.post(f"{API}/uploads", files={"file": ("é" * 3000 + ".wav", f)})
        message = _assert_error(response, 400, "INVALID_MULTIPART")["message"]
        assert "file name" in message
