"""Schemathesis drives every operation of the OpenAPI schema with generated requests: the API
must never answer 5xx, and every error body is ``{code, message}``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from emotivoice.service.app import create_app
from emotivoice.service.settings import load_settings

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
    assert response.status_code < 500, (case.path, case.method, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message"} and body["code"].isupper(), body
