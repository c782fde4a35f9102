"""The one exception type of packet decoding."""

from __future__ import annotations

__all__ = ["PacketError"]


class PacketError(ValueError):
    """A packet or packet file is malformed, of an unsupported version, or out of range.

    Every decoding failure of this package raises this type (and nothing else), with a
    message that says what was wrong; a running call catches it, counts the packet as bad
    and carries on.
    """
