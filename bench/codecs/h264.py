"""H.264 (libx264 through PyAV) set up as a video call would be.

``tune=zerolatency`` (no B-frames, no look-ahead), one IDR at the start (huge GOP,
``sc_threshold=0``), CBR-like rate control: ``bit_rate = maxrate = bufsize = target`` (a 1 s
VBV), ``qmax=51`` (x264's default of 69 turns the picture grey below its floor), one thread
(sliced threads raise the floor), the clip's real frame rate.  See
``../shared/notes/x264-pitfalls.md`` for why each setting matters.

The rate reported is the *actual* one: the sum of the sizes of all packets x 8 / duration.
The ~650-byte informational SEI that x264 writes into the first packet (its version and
options, not needed to decode) is left out of the count; SPS and PPS are counted.
``info["kbps_with_sei"]`` gives the rate with it.

On the wire (:mod:`bench.wire_rate`), each packet (one frame) is an access unit sent as RTP
packets of its own; its NAL units, start codes dropped and the same SEI left out, are what the
RTP packetizer gets (:func:`nal_unit_sizes`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..inputs import ClipInput
from ..wire_rate import Route, SentUnit
from .base import Codec, CodecOutput

__all__ = ["H264", "nal_unit_sizes", "x264_info_sei_bytes"]

#: Target bitrates in kbps, by crop size.
DEFAULT_RATES = {
    256: (8, 10, 12, 15, 20, 25, 30, 40, 60, 90, 150, 300),
    512: (10, 15, 20, 30, 40, 60, 80, 120, 200, 350, 600, 1000),
}


def _nal_units(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit (start code included) in Annex-B ``data``."""
    starts = []
    index = data.find(b"\x00\x00\x01")
    while index >= 0:
        begin = index - 1 if index > 0 and data[index - 1] == 0 else index
        starts.append((begin, index + 3))
        index = data.find(b"\x00\x00\x01", index + 3)
    return [(begin, starts[i + 1][0] if i + 1 < len(starts) else len(data)) for i, (begin, _) in enumerate(starts)]


def _is_info_sei(data: bytes, header: int, end: int) -> bool:
    """Whether the NAL unit whose header byte is at ``header`` is x264's informational SEI."""
    return header < end and data[header] & 0x1F == 6 and b"x264 - core" in data[header:end]


def x264_info_sei_bytes(data: bytes) -> int:
    """Bytes of x264's informational SEI NAL units (type 6 holding ``x264 - core``) in a packet."""
    total = 0
    for begin, end in _nal_units(data):
        header = data.find(b"\x00\x00\x01", begin) + 3
        if _is_info_sei(data, header, end):
            total += end - begin
    return total


def nal_unit_sizes(data: bytes) -> tuple[int, ...]:
    """Bytes of each NAL unit of an Annex-B packet without its start code (as an RTP packetizer
    gets them), x264's informational SEI left out."""
    sizes = []
    for begin, end in _nal_units(data):
        header = data.find(b"\x00\x00\x01", begin) + 3
        if not _is_info_sei(data, header, end):
            sizes.append(end - header)
    return tuple(sizes)


class H264(Codec):
    """libx264 at a sweep of target bitrates (kbps)."""

    name = "h264"

    def __init__(self, rates: dict[int, tuple[int, ...]] | None = None, preset: str = "medium") -> None:
        self.rates = rates or DEFAULT_RATES
        self.preset = preset

    def settings(self, size: int) -> list[float]:
        if size in self.rates:
            return [float(r) for r in self.rates[size]]
        scale = (size / 256) ** 2  # rates grow about with the pixel count
        return [float(round(r * scale)) for r in self.rates[256]]

    def encode(self, clip: ClipInput, setting: float) -> list[bytes]:
        """The H.264 packets (Annex B) of the clip at a target of ``setting`` kbps."""
        import av

        target = round(setting * 1000)
        if target < 1000:
            raise ValueError(f"x264 needs a target of at least 1 kbps, got {setting} kbps")
        rate = Fraction(clip.fps).limit_denominator(1001)
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width = encoder.height = clip.size
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = 1 / rate
        encoder.framerate = rate
        encoder.bit_rate = target
        encoder.gop_size = 1_000_000
        encoder.max_b_frames = 0
        encoder.thread_count = 1
        encoder.options = {
            "preset": self.preset,
            "tune": "zerolatency",
            "sc_threshold": "0",
            "qmax": "51",
            "maxrate": str(target),
            "bufsize": str(target),
        }
        encoder.open()
        if encoder.options:
            raise RuntimeError(f"x264 ignored options {encoder.options}")
        packets = []
        for index, image in enumerate(clip.frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            packets.extend(encoder.encode(frame))
        packets.extend(encoder.encode(None))
        return [bytes(p) for p in packets]

    def run(self, clip: ClipInput, setting: float) -> CodecOutput:
        import av

        payloads = self.encode(clip, setting)
        decoder = av.CodecContext.create("h264", "r")
        decoded: list[np.ndarray] = []
        for payload in payloads:
            decoded.extend(f.to_ndarray(format="rgb24") for f in decoder.decode(av.Packet(payload)))
        decoded.extend(f.to_ndarray(format="rgb24") for f in decoder.decode(None))
        if not decoded:
            raise RuntimeError(f"{clip.name}: the H.264 decoder returned no frame at {setting} kbps")
        while len(decoded) < len(clip.frames):  # a frame the encoder skipped: the receiver holds the last
            decoded.append(decoded[-1])
        total = sum(len(p) for p in payloads)
        sei = sum(x264_info_sei_bytes(p) for p in payloads[:1])
        duration = clip.duration
        last = len(clip.times) - 1
        sent = tuple(SentUnit(float(clip.times[min(index, last)]), Route.VIDEO_RTP, nal_unit_sizes(payload))
                     for index, payload in enumerate(payloads))  # fmt: skip
        return CodecOutput(
            np.stack(decoded[: len(clip.frames)]),
            8 * (total - sei),
            setting,
            {"target_kbps": setting, "kbps_with_sei": 8 * total / duration / 1000, "packets": len(payloads)},
            sent,
        )
