"""Where a :class:`receiver.wire.WireMeter` attaches to aiortc (1.16) and aioice (0.13).

Instance attributes only (no class is patched; other peer connections are untouched), installed
when the peer connection's ICE gathering is complete: the sockets exist then, and no datagram
can have flowed (the peer learns our candidates from the answer that follows).

- socket layer: each aioice ``StunProtocol`` of ``RTCIceTransport._connection._protocols``:
  its transport's ``sendto`` (every datagram sent: STUN, DTLS, SRTP) and its
  ``datagram_received`` (every datagram received);
- ``RTCDtlsTransport._send_data(plaintext)``: an SCTP packet going into DTLS; the ``sendto`` of
  its encrypted record happens inside that call, in the same task: a context variable carries
  the plaintext to it;
- ``RTCIceTransport._recv()``: the datagram the DTLS task takes to decrypt;
  ``RTCSctpTransport._handle_data(plaintext)``: the SCTP packet it decrypted from that datagram
  (the same task, nothing read in between).

Every wrapper calls the original whatever the meter does; the meter's own failures are counted
(``unparsed``), never raised.
"""

from __future__ import annotations

import socket
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .datagrams import IP_UDP_HEADER, demux

if TYPE_CHECKING:
    from .wire import Pending, WireMeter

__all__ = ["hook_peer_connection"]

#: received DTLS datagrams waiting for aiortc to decrypt them (beyond this the oldest are forgotten)
MAX_PENDING = 4096


class _Outgoing:
    """The SCTP packet a task is handing to DTLS, until its datagram is sent."""

    __slots__ = ("meter", "plaintext")

    def __init__(self, meter: WireMeter, plaintext: bytes) -> None:
        self.meter = meter
        self.plaintext: bytes | None = plaintext


_OUTGOING: ContextVar[_Outgoing | None] = ContextVar("facevc_wire_outgoing", default=None)


class _Hooks:
    """The glue between one meter and one peer connection's transports."""

    def __init__(self, meter: WireMeter, pc: Any) -> None:
        self.meter = meter
        self.pc = pc
        self.hooked: list[Any] = []  #: objects already wrapped
        self.pending: dict[int, Pending] = {}  #: id(received DTLS datagram) -> it, until aiortc reads it
        self.current: Pending | None = None  #: the DTLS datagram aiortc is decrypting now

    def _first_time(self, thing: Any) -> bool:
        if any(thing is seen for seen in self.hooked):
            return False
        self.hooked.append(thing)
        return True

    def on_gathering(self) -> None:
        if self.pc.iceGatheringState == "complete":
            self.meter.safely(self.hook_all)

    def hook_all(self) -> None:
        pc = self.pc
        sctp = pc.sctp
        dtls_transports = [t.receiver.transport for t in pc.getTransceivers()]
        dtls_transports += [sctp.transport] if sctp is not None else []
        for dtls in dtls_transports:
            if dtls is None or not self._first_time(dtls):
                continue
            ice = dtls.transport
            for protocol in list(ice._connection._protocols):
                if self._first_time(protocol):
                    self.hook_protocol(protocol)
            if self._first_time(ice):
                self.hook_ice(ice)
            self.hook_dtls(dtls)
        if sctp is not None and self._first_time(sctp):
            self.meter.sctp = sctp
            self.hook_sctp(sctp)

    def hook_protocol(self, protocol: Any) -> None:
        meter, transport = self.meter, protocol.transport
        sock = transport.get_extra_info("socket")
        header = IP_UDP_HEADER[6 if sock is not None and sock.family == socket.AF_INET6 else 4]
        original_sendto = transport.sendto
        original_received = protocol.datagram_received

        def sendto(data: bytes, *args: Any) -> None:
            meter.safely(self.sent, data, header)
            original_sendto(data, *args)

        def datagram_received(data: bytes, addr: Any) -> None:
            meter.safely(self.received, data, header)
            original_received(data, addr)

        transport.sendto = sendto
        protocol.datagram_received = datagram_received

    def hook_ice(self, ice: Any) -> None:
        original = ice._recv

        async def recv() -> Any:
            data = await original()
            self.meter.safely(self.read, data)
            return data

        ice._recv = recv

    def hook_dtls(self, dtls: Any) -> None:
        original = dtls._send_data

        async def send_data(data: bytes) -> None:
            token = _OUTGOING.set(_Outgoing(self.meter, data))
            try:
                await original(data)
            finally:
                _OUTGOING.reset(token)

        dtls._send_data = send_data

    def hook_sctp(self, sctp: Any) -> None:
        original = sctp._handle_data

        async def handle_data(data: bytes) -> None:
            self.meter.safely(self.decrypted, data)
            await original(data)

        sctp._handle_data = handle_data

    # --- what the wrappers report --------------------------------------------------------

    def sent(self, data: bytes, header: int) -> None:
        outgoing = _OUTGOING.get()
        plaintext = None
        if outgoing is not None and outgoing.meter is self.meter and outgoing.plaintext is not None:
            if demux(data) == "dtls":
                plaintext, outgoing.plaintext = outgoing.plaintext, None
        self.meter.on_datagram(data, "sent", header, plaintext)

    def received(self, data: bytes, header: int) -> None:
        pending = self.meter.on_datagram(data, "received", header)
        if pending is not None:
            if len(self.pending) >= MAX_PENDING:
                self.pending.pop(next(iter(self.pending)))  # aiortc stopped reading: forget the oldest
            self.pending[id(data)] = pending

    def read(self, data: Any) -> None:
        pending = self.pending.pop(id(data), None)
        self.current = pending if pending is not None and pending.data is data else None

    def decrypted(self, plaintext: bytes) -> None:
        pending, self.current = self.current, None
        self.meter.on_sctp_received(pending, plaintext)


def hook_peer_connection(meter: WireMeter, pc: Any) -> None:
    """Attach ``meter`` to ``pc`` now if its ICE gathering is complete, else when it is."""
    hooks = _Hooks(meter, pc)
    pc.on("icegatheringstatechange", hooks.on_gathering)
    hooks.on_gathering()
