"""The receiver's RTCP reports, spaced as RFC 3550 asks of a thin call, and the SRTP profile with the shorter tag.

aiortc sends a receiver report (RR + SDES, ~80 bytes on the wire) every 0.5-1.5 s on each RTP
stream: 1 kbps per direction, 5 % of a 20 kbps call on its own, where RFC 3550 (section 6.2)
gives all of RTCP 5 % and a minimum interval of 5 s, randomized over [0.5, 1.5] times that.
:func:`space_rtcp_reports` makes it so.  The sender's motion carrier reads the loss these report, but it
learns of a loss sooner from the refresh requests (``sender.carrier``).

Where it hooks (aiortc 1.16; ``tests/test_thin_link.py`` fails if that moves):
``RTCRtpReceiver._run_rtcp`` waits ``asyncio.sleep(0.5 + random.random())`` between reports, with
the ``random`` module its own module imported (and uses it nowhere else).  That name is replaced
by a stand-in whose ``random()`` returns ``interval * uniform(0.5, 1.5) - 0.5``.  It applies to
every RTP receiver of this process: the call's (a viewer's browser sends nothing to report on).

**SRTP profile**: aiortc prefers AEAD_AES_256_GCM, whose 16-byte tag on each of the 16.7 audio
packets a second costs 2.1 kbps.  :func:`prefer_short_srtp_tag` makes this call's DTLS transports
prefer AES128_CM_HMAC_SHA1_32 (RFC 5764; RFC 3711 section 9.5 keeps the 32-bit tag for voice on
thin links: a forged packet passes with probability 2^-32, and every motion message is still
checked strictly; its RTCP keeps the 80-bit tag), then AES128_CM_HMAC_SHA1_80 (WebRTC's mandatory
profile), then the GCM ones: 12 bytes a packet less, 1.6 kbps.  The DTLS server's order decides
(OpenSSL), so both ends of the call ask for it, the receiver here and the sender in ``sender.thin_link``.
Where it hooks: ``RTCDtlsTransport._srtp_profiles``, the list its handshake offers and accepts,
set on the transports before the handshake starts.
The same settings as ``sender.thin_link``, written twice because the sender and the receiver
never import each other (``tests/test_imports.py``); ``tests/test_thin_link.py`` checks that the
two agree.
"""

from __future__ import annotations

import random
import types
from typing import Any

__all__ = ["RTCP_INTERVAL", "SRTP_PREFERENCE", "prefer_short_srtp_tag", "space_rtcp_reports"]

#: seconds between RTCP reports on average (RFC 3550, section 6.2: the recommended minimum)
RTCP_INTERVAL = 5.0
#: SRTP profiles in the order this call asks for them (aiortc's names, RFC 5764 / RFC 7714)
SRTP_PREFERENCE = ("SRTP_AES128_CM_SHA1_32", "SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_256_GCM")
#: the attribute of aiortc's RTCDtlsTransport that lists the SRTP profiles of its handshake
SRTP_PROFILES_ATTRIBUTE = "_srtp_profiles"
#: the constant aiortc adds to ``random.random()`` for its wait
_AIORTC_OFFSET = 0.5


def space_rtcp_reports(interval: float = RTCP_INTERVAL) -> None:
    """Space this process's RTCP receiver reports ``interval`` seconds apart on average (uniform
    over [0.5, 1.5] times it); idempotent.

    Raises:
        ValueError: ``interval`` is below aiortc's own 1 s.
    """
    import aiortc.rtcrtpreceiver

    if interval < 2 * _AIORTC_OFFSET:
        raise ValueError(f"an RTCP interval of {interval} s is below aiortc's own 1 s")
    aiortc.rtcrtpreceiver.random = types.SimpleNamespace(  # type: ignore[assignment]
        random=lambda: interval * random.uniform(0.5, 1.5) - _AIORTC_OFFSET
    )


def prefer_short_srtp_tag(pc: Any) -> int:
    """Make the DTLS transports ``pc`` has now (call it once the offer is applied and its transports exist, before
    the handshake) ask for :data:`SRTP_PREFERENCE`; returns how many transports were set.

    Raises:
        RuntimeError: aiortc keeps its SRTP profiles elsewhere now (a new aiortc).
    """
    from aiortc import rtcdtlstransport
    from pylibsrtp import Policy

    short_tag = rtcdtlstransport.SRTPProtectionProfile(  # aiortc does not list it; libsrtp has it
        libsrtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
        openssl_profile=b"SRTP_AES128_CM_SHA1_32",
        key_length=16,
        salt_length=14,
    )
    by_name = {profile.openssl_profile.decode(): profile for profile in [short_tag, *rtcdtlstransport.SRTP_PROFILES]}
    preferred = [by_name[name] for name in SRTP_PREFERENCE if name in by_name]
    transports = {id(t.sender.transport): t.sender.transport for t in pc.getTransceivers() if t.sender.transport}
    if pc.sctp is not None:
        transports[id(pc.sctp.transport)] = pc.sctp.transport
    for transport in transports.values():
        if not hasattr(transport, SRTP_PROFILES_ATTRIBUTE):
            raise RuntimeError(f"aiortc's RTCDtlsTransport has no {SRTP_PROFILES_ATTRIBUTE} any more: the SRTP "
                               "profile cannot be chosen (see thin_link.py)")  # fmt: skip
        setattr(transport, SRTP_PROFILES_ATTRIBUTE, preferred)
    return len(transports)
