"""The maximum message size this receiver announces, enforced.

aiortc announces ``a=max-message-size:262144`` in its SDP but reassembles whatever a peer sends:
a peer that ignores the announcement (or the receive window) can make it buffer any amount.
:func:`enforce_sctp_message_limit` wraps aiortc's handling of SCTP DATA chunks so that an
association whose stream holds more undelivered data than the announced maximum is aborted
(RFC 8831 section 6.6 lets a receiver close a channel that sends messages too large); the rest
of the process, and every other peer, go on.  :class:`receiver.session.ReceiverSession` also
drops any delivered message over the limit.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["MAX_MESSAGE_BYTES", "enforce_sctp_message_limit"]

log = logging.getLogger(__name__)

#: the largest data-channel message accepted: what aiortc announces (its LOCAL_MAX_MESSAGE_SIZE)
MAX_MESSAGE_BYTES = 262144

_installed = False


def enforce_sctp_message_limit() -> None:
    """Install the check into aiortc (once per process; idempotent)."""
    global _installed
    if _installed:
        return
    from aiortc import rtcsctptransport

    original = rtcsctptransport.RTCSctpTransport._receive_data_chunk

    async def receive_data_chunk(transport: Any, chunk: Any) -> None:
        await original(transport, chunk)
        stream = transport._inbound_streams.get(chunk.stream_id)
        buffered = sum(len(fragment.user_data) for fragment in stream.reassembly) if stream is not None else 0
        if buffered > MAX_MESSAGE_BYTES and transport.state != "closed":
            log.warning(
                "aborted a data channel association: %d bytes buffered on stream %d, over the announced %d",
                buffered, chunk.stream_id, MAX_MESSAGE_BYTES,
            )  # fmt: skip
            stream.reassembly.clear()
            await transport.stop()

    rtcsctptransport.RTCSctpTransport._receive_data_chunk = receive_data_chunk  # type: ignore[method-assign,assignment]
    _installed = True
