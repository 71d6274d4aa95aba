"""``/tokens``: short-lived signed tokens for URLs a browser fetches without headers.

An ``<audio>`` element, an image, a download link or a WebSocket cannot send the ``X-API-Key``
header, and a key in a URL ends up in logs and browser history. The web UI asks for a token with
its key (in the header) and puts the token in those URLs instead: it is valid for reads and live
streams only, for ``token_ttl_s`` seconds, and dies with its key.
"""

from __future__ import annotations

from fastapi import APIRouter

from emotivoice.service.deps import Owner, Svc
from emotivoice.service.routes import ERROR_RESPONSES
from emotivoice.service.schemas import Token

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["service"])


@router.post("/tokens", status_code=201)
def create_token(svc: Svc, owner: Owner) -> Token:
    """A token standing for the caller's key in ``?token=`` of reads and ``/stream``."""
    ttl = svc.settings.token_ttl_s
    return Token(token=svc.signer.issue(owner), expires_in=round(ttl))
