"""``.fvc`` files: a recorded packet stream.

Layout: the 4 magic bytes ``FVC1``, then one record per packet: a 4-byte big-endian length
followed by the packet's msgpack bytes, in the order they were sent.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import PacketError
from .messages import Packet
from .wire import MAX_PACKET_BYTES, decode_packet, encode_packet

__all__ = ["MAGIC", "PacketFileWriter", "iter_packet_file", "read_packet_records"]

MAGIC = b"FVC1"


class PacketFileWriter:
    """Append packets to a new ``.fvc`` file; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: BinaryIO = self.path.open("wb")
        self._file.write(MAGIC)
        self.bytes_written = len(MAGIC)

    def write(self, packet: Packet) -> bytes:
        """Write one packet; returns its encoded bytes (without the 4-byte length)."""
        data = encode_packet(packet)
        self.write_message(data)
        return data

    def write_message(self, data: bytes) -> None:
        """Write one message as sent (the bytes an :class:`codec.Encoder` produced)."""
        self._file.write(struct.pack(">I", len(data)) + data)
        self.bytes_written += 4 + len(data)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PacketFileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_packet_records(path: str | Path) -> Iterator[bytes]:
    """The raw packet bytes of an ``.fvc`` file, one by one.

    Raises:
        PacketError: not an .fvc file, or a truncated / oversized record (the message names
        the file and the byte offset).
    """
    path = Path(path)
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise PacketError(f"{path}: not a packet file (no {MAGIC.decode()} header)")
        offset = len(MAGIC)
        while True:
            header = file.read(4)
            if not header:
                return
            if len(header) < 4:
                raise PacketError(f"{path}: truncated record header at byte {offset}")
            (length,) = struct.unpack(">I", header)
            if length == 0 or length > MAX_PACKET_BYTES:
                raise PacketError(f"{path}: record at byte {offset} claims {length} bytes")
            data = file.read(length)
            if len(data) < length:
                raise PacketError(f"{path}: truncated record at byte {offset} ({len(data)} of {length} bytes)")
            yield data
            offset += 4 + length


def iter_packet_file(path: str | Path) -> Iterator[Packet]:
    """Decoded packets of an ``.fvc`` file (raises :class:`PacketError` on the first bad one)."""
    for data in read_packet_records(path):
        yield decode_packet(data)
