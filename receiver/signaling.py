"""Signaling that always cleans up: offers read with a size limit and a timeout, answers that
close their peer connection on any failure, connections that must connect in time, and the
call's token compared in constant time.

Every way an offer can fail (a body that is not JSON, ``"sdp": 5``, garbage SDP, a body over
the limit, a client that stops sending or disconnects mid-body, an accepted offer that never
connects) ends with the peer connection closed, so it holds no call slot and no viewer seat.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_OFFER_BYTES",
    "MAX_VIEWERS",
    "PENDING_GRACE",
    "READ_TIMEOUT",
    "OfferError",
    "answer_offer",
    "close_unless_connected",
    "read_offer",
    "token_matches",
]

#: an accepted call or viewer that is not connected this many seconds later is closed
CONNECT_TIMEOUT = 20.0
#: a new call offer replaces an earlier one that has not connected after this many seconds, or a
#: connected call whose sender has sent nothing for as long (it vanished: a sender without a face
#: still says ``no_face`` every second)
PENDING_GRACE = 3.0
#: seconds allowed to read an offer's body
READ_TIMEOUT = 5.0
#: an HTTP connection idle (or still sending its request's header) this long is closed
IDLE_TIMEOUT = 10.0
#: an SDP offer is a few KB; larger bodies are refused
MAX_OFFER_BYTES = 64 * 1024
#: viewer pages connected at once
MAX_VIEWERS = 8


class OfferError(Exception):
    """An offer that cannot be answered: ``status`` and ``message`` for the HTTP reply."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of the bytes (any text, ASCII or not, is just a wrong token)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


async def read_offer(request: Any, need: str | None = None) -> tuple[str, str]:
    """``(sdp, type)`` of a request's JSON body ``{"sdp": ..., "type": "offer"}``; ``need``: a
    media line the SDP must have (``m=application``: a call has data channels).

    Raises:
        OfferError: 413 over :data:`MAX_OFFER_BYTES`, 408 not sent within :data:`READ_TIMEOUT`,
        400 anything else (not JSON, missing or mistyped fields, a client gone mid-body).
    """
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise OfferError(413, f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            while chunk := await request.content.read(MAX_OFFER_BYTES + 1 - len(body)):
                body += chunk
                if len(body) > MAX_OFFER_BYTES:
                    raise OfferError(413, f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    except TimeoutError as exc:
        raise OfferError(408, f"the offer did not arrive within {READ_TIMEOUT:g} s") from exc
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise OfferError(400, f"the offer was cut off ({exc})") from exc
    except Exception as exc:  # aiohttp's payload errors when the client goes away
        if isinstance(exc, OfferError):
            raise
        raise OfferError(400, f"the offer could not be read ({type(exc).__name__})") from exc
    try:
        offer = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OfferError(400, "not a valid SDP offer (the body is not JSON)") from exc
    if not isinstance(offer, dict) or not isinstance(offer.get("sdp"), str) or offer.get("type") != "offer":
        raise OfferError(400, 'not a valid SDP offer (expected {"sdp": "...", "type": "offer"})')
    if need is not None and f"\n{need}" not in offer["sdp"]:
        raise OfferError(400, f"not a valid SDP offer (it has no {need} line)")
    return offer["sdp"], "offer"


async def answer_offer(
    pc: Any, sdp: str, kind: str, before_answer: Callable[[Any], object] | None = None
) -> dict[str, str]:
    """Apply the offer to ``pc`` and return its answer; on any failure ``pc`` is closed.
    ``before_answer(pc)`` runs between the two (the transports exist, no handshake yet).

    Raises:
        OfferError: 400, the SDP could not be used.
    """
    from aiortc import RTCSessionDescription

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if before_answer is not None:
            before_answer(pc)
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:  # aiortc raises many kinds on garbage SDP
        await pc.close()
        raise OfferError(400, f"not a valid SDP offer ({type(exc).__name__}: {exc})") from exc
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}


async def close_unless_connected(pc: Any, timeout: float | None = None) -> None:
    """Close ``pc`` if it is not connected ``timeout`` seconds (default :data:`CONNECT_TIMEOUT`)
    from now: an abandoned offer."""
    await asyncio.sleep(CONNECT_TIMEOUT if timeout is None else timeout)
    if pc.connectionState not in ("connected", "closed"):
        await pc.close()
