"""Run an ASGI app with uvicorn on a free loopback port in a background thread.

Used by ``emotivoice bench stream`` and the tests: a real server and real sockets, in-process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emotivoice.errors import EmotiVoiceError

__all__ = ["free_port", "serve"]

_STARTUP_TIMEOUT_S = 30.0
_POLL_S = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yields the base URL ``http://127.0.0.1:PORT``."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise EmotiVoiceError(f"The local server on port {port} did not start.")
        time.sleep(_POLL_S)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_STARTUP_TIMEOUT_S)
