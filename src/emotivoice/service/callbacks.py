"""Completion callbacks: where they may go, and their delivery apart from the analysis.

**Where** (:func:`check_callback_url`, when the analysis is requested, and again at every
connection): https only (plain http when ``callback_allow_http``), no credentials in the URL,
and the host must resolve to public addresses only: loopback, private, link-local (cloud
metadata), multicast, reserved and unspecified addresses are refused unless the operator names
the host, the address or its network in ``callback_allowed_hosts``. The delivery connects to
the address it has just checked (the name stays in ``Host`` and TLS SNI), so a DNS answer that
changes between check and connection (DNS rebinding) cannot redirect it.

**How** (:class:`Courier`): a notice is handed to a small pool of delivery threads of the worker
process and the analysis task returns at once; a slow or dead receiver never holds the queue.
Each notice is tried ``callback_tries`` times with exponential back-off. Clients see only
``pending``, ``delivered`` or ``failed`` in ``callback_status``: why a delivery failed (refused
connection, time-out) goes to the log, so the status cannot be used to scan ports.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from emotivoice.service.errors import CallbackRefusedError
from emotivoice.service.settings import Settings

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "Courier",
    "Target",
    "check_callback_url",
    "courier",
    "deliver",
]

logger = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_BACKOFF_S = 1.0  # first pause between tries; doubled each time
_MAX_BACKOFF_S = 60.0
_DELIVERY_THREADS = 4

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A checked callback destination: the URL's parts and the addresses it may connect to."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _allowed_by_operator(settings: Settings, host: str, address: IPAddress) -> bool:
    for entry in settings.callback_allowed_hosts:
        entry = entry.strip().lower()
        if entry == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry
    return False


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def check_callback_url(
    settings: Settings,
    url: str,
    resolve: Callable[[str, int], list[str]] | None = None,
) -> Target:
    """The checked destination of ``url``.

    Raises:
        CallbackRefusedError: not https (unless allowed), credentials in the URL, a host that
            does not resolve, or one address that is not public and not allowed by the operator.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if settings.callback_allow_http else ("https",)
    if scheme not in allowed_schemes:
        raise CallbackRefusedError(
            f"callback_url must be an {' or '.join(allowed_schemes)} URL; this server does not "
            "send notices over plain http (the operator may allow it: callback_allow_http)."
        )
    if parts.username or parts.password:
        raise CallbackRefusedError("callback_url must not carry a user name or password.")
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as e:
        raise CallbackRefusedError("callback_url has an invalid port.") from e
    if not host:
        raise CallbackRefusedError("callback_url has no host.")
    try:
        addresses = (resolve or _resolve)(host, port)
    except OSError as e:
        raise CallbackRefusedError(f"The callback host {host!r} cannot be resolved.") from e
    if not addresses:
        raise CallbackRefusedError(f"The callback host {host!r} cannot be resolved.")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not _public(address) and not _allowed_by_operator(settings, host, address):
            raise CallbackRefusedError(
                f"The callback host {host!r} is a loopback, private, link-local or reserved "
                "address; notices go only to public hosts unless the operator allows this one "
                "(callback_allowed_hosts)."
            )
    return Target(scheme=scheme, host=host, port=port, addresses=tuple(addresses))


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def deliver(settings: Settings, url: str, body: bytes, headers: dict[str, str]) -> bool:
    """POST ``body`` to ``url`` once, at an address checked just now; whether it was accepted.

    A 2xx answer is a delivery; anything else (refused URL, network error, other status) is
    logged and returns ``False``.
    """
    import httpx

    try:
        target = check_callback_url(settings, url)
    except CallbackRefusedError as e:
        logger.warning("Callback to %s refused at delivery: %s", url, e.message)
        return False
    address = target.addresses[0]
    pinned = httpx.URL(url).copy_with(host=address)
    request_headers = {**headers, "Host": httpx.URL(url).netloc.decode("ascii")}
    try:
        with httpx.Client(timeout=settings.callback_timeout_s, follow_redirects=False) as client:
            response = client.post(
                pinned,
                content=body,
                headers=request_headers,
                extensions={"sni_hostname": target.host},
            )
    except httpx.HTTPError as e:
        logger.info("Callback to %s failed: %s", url, type(e).__name__)
        return False
    if 200 <= response.status_code < 300:
        return True
    logger.info("Callback to %s answered HTTP %d", url, response.status_code)
    return False


class Courier:
    """Delivers notices on its own threads, with retries and back-off (one per worker process).

    ``send`` makes one attempt and says whether it was delivered; ``record`` stores the outcome.
    """

    def __init__(self, tries: int, backoff_s: float = _BACKOFF_S) -> None:
        self.tries, self.backoff_s = tries, backoff_s
        self._pool = ThreadPoolExecutor(_DELIVERY_THREADS, thread_name_prefix="callback")
        self._stop = threading.Event()

    def submit(self, name: str, send: Callable[[], bool], record: Callable[[str], None]) -> None:
        self._pool.submit(self._run, name, send, record)

    def _run(self, name: str, send: Callable[[], bool], record: Callable[[str], None]) -> None:
        pause = self.backoff_s
        for attempt in range(1, self.tries + 1):
            try:
                if send():
                    record(DELIVERED)
                    logger.info("Callback for %s delivered (try %d)", name, attempt)
                    return
            except Exception:  # a delivery thread must survive anything
                logger.warning("Callback for %s failed", name, exc_info=True)
            if attempt < self.tries and self._stop.wait(pause):
                break
            pause = min(_MAX_BACKOFF_S, pause * 2)
        record(FAILED)
        logger.warning("Callback for %s not delivered after %d tries", name, self.tries)

    def shutdown(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


_courier: Courier | None = None
_courier_lock = threading.Lock()


def courier(settings: Settings) -> Courier:
    """This process' courier (made on first use, after any fork)."""
    global _courier
    with _courier_lock:
        if _courier is None:
            _courier = Courier(settings.callback_tries)
        return _courier
