"""The Opus speech codec, straight from libopus through :mod:`ctypes`.

FFmpeg's libopus wrapper (what PyAV and aiortc use) offers neither DTX nor the decoder's
in-band FEC and loss concealment, so the call's sound talks to libopus itself: the copy that
PyAV's wheel bundles (``av.libs/libopus-*.so*`` on Linux, ``av/.dylibs`` on macOS, ``av.libs``
DLLs on Windows), or the system's ``libopus`` when PyAV was built from source.

Only the few calls the call needs are bound: an encoder (:class:`OpusEncoderState`), a decoder
with FEC and packet-loss concealment (:class:`OpusDecoderState`) and two packet queries
(:func:`packet_samples`, :func:`packet_has_fec`). Samples are interleaved int16 at 48 kHz.
``sender.audio`` and ``receiver.audio`` build the call's encoder and decoder on these.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
from pathlib import Path

import numpy as np

__all__ = [
    "MAX_PACKET_SAMPLES",
    "SAMPLE_RATE",
    "OpusDecoderState",
    "OpusEncoderState",
    "OpusError",
    "libopus",
    "libopus_candidates",
    "packet_has_fec",
    "packet_samples",
]

SAMPLE_RATE = 48000
#: the longest Opus packet: 120 ms
MAX_PACKET_SAMPLES = 5760
#: the longest packet a decoder accepts; larger ones are not Opus (RFC 6716 caps a frame at 1275)
MAX_PACKET_BYTES = 1500

# from opus_defines.h
_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_VBR = 4006
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_SET_SIGNAL = 4024
_GET_LOOKAHEAD = 4027
_SIGNAL_VOICE = 3001

_BYTES = ctypes.POINTER(ctypes.c_ubyte)
_SAMPLES = ctypes.POINTER(ctypes.c_int16)


class OpusError(RuntimeError):
    """libopus is missing, or refused a call; the message says which and why."""


def libopus_candidates() -> list[Path]:
    """The libopus files bundled with the installed PyAV wheel (empty when there are none)."""
    spec = importlib.util.find_spec("av")
    if spec is None or spec.origin is None:
        return []
    package = Path(spec.origin).parent
    patterns = [
        (package.parent / "av.libs", "libopus*.so*"),  # Linux (auditwheel)
        (package / ".dylibs", "libopus*.dylib"),  # macOS (delocate)
        (package.parent / "av.libs", "*opus*.dll"),  # Windows (delvewheel)
    ]
    return sorted(path for folder, pattern in patterns if folder.is_dir() for path in folder.glob(pattern))


@functools.cache
def libopus() -> ctypes.CDLL:
    """The loaded libopus, with the prototypes of the calls used here.

    Raises:
        OpusError: no libopus next to PyAV nor on the system.
    """
    candidates = [str(path) for path in libopus_candidates()]
    system = ctypes.util.find_library("opus")
    if system is not None:
        candidates.append(system)
    if not candidates:
        raise OpusError(
            "libopus not found: PyAV's wheel bundles it (av.libs/libopus-*), and no system libopus is "
            "installed either (apt-get install libopus0, or pip install av from a wheel)"
        )
    lib = ctypes.CDLL(candidates[0])
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    # opus_encoder_ctl is variadic: with two fixed argtypes, ctypes passes the third as a variadic one
    lib.opus_encoder_ctl.restype = ctypes.c_int
    lib.opus_encoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_encode.argtypes = [ctypes.c_void_p, _SAMPLES, ctypes.c_int, _BYTES, ctypes.c_int32]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [ctypes.c_void_p, _BYTES, ctypes.c_int32, _SAMPLES, ctypes.c_int, ctypes.c_int]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    lib.opus_packet_get_nb_samples.argtypes = [_BYTES, ctypes.c_int32, ctypes.c_int32]
    lib.opus_packet_has_lbrr.restype = ctypes.c_int
    lib.opus_packet_has_lbrr.argtypes = [_BYTES, ctypes.c_int32]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    return lib


def _check(code: int, what: str) -> int:
    if code < 0:
        message = libopus().opus_strerror(code)
        raise OpusError(f"{what} failed: {message.decode() if message else code}")
    return code


def _bytes(data: bytes) -> ctypes.Array[ctypes.c_ubyte]:
    return (ctypes.c_ubyte * len(data)).from_buffer_copy(data)


def packet_samples(data: bytes) -> int:
    """Samples (per channel, at 48 kHz) in an Opus packet.

    Raises:
        OpusError: not an Opus packet.
    """
    if not data:
        raise OpusError("packet_samples failed: empty packet")
    return _check(libopus().opus_packet_get_nb_samples(_bytes(data), len(data), SAMPLE_RATE), "packet_samples")


def packet_has_fec(data: bytes) -> bool:
    """Whether an Opus packet carries in-band FEC (LBRR) for the packet before it."""
    if not data:
        return False
    return libopus().opus_packet_has_lbrr(_bytes(data), len(data)) > 0


class OpusEncoderState:
    """A libopus encoder for speech: VoIP application, voice signal, VBR.

    Args:
        bitrate: target bits per second.
        channels: 1 (mono) or 2.
        fec: in-band FEC (each packet also carries a coarse copy of the one before).
        packet_loss: the loss, in percent, that the FEC is sized for.
        dtx: discontinuous transmission: 1-byte packets while nothing is said.
    """

    def __init__(
        self, bitrate: int, channels: int = 1, fec: bool = True, packet_loss: int = 10, dtx: bool = True
    ) -> None:
        lib = libopus()
        error = ctypes.c_int()
        handle = lib.opus_encoder_create(SAMPLE_RATE, channels, _APPLICATION_VOIP, ctypes.byref(error))
        _check(error.value, "opus_encoder_create")
        self._handle: int | None = handle
        self.channels = channels
        for request, value in ((_SET_BITRATE, bitrate), (_SET_VBR, 1), (_SET_INBAND_FEC, int(fec)),
                               (_SET_PACKET_LOSS_PERC, packet_loss), (_SET_DTX, int(dtx)),
                               (_SET_SIGNAL, _SIGNAL_VOICE)):  # fmt: skip
            _check(lib.opus_encoder_ctl(handle, request, ctypes.c_int32(value)), f"opus_encoder_ctl({request})")
        lookahead = ctypes.c_int32()
        _check(lib.opus_encoder_ctl(handle, _GET_LOOKAHEAD, ctypes.byref(lookahead)), "opus_encoder_ctl(lookahead)")
        #: samples of delay the encoder adds
        self.lookahead = lookahead.value

    def encode(self, pcm: np.ndarray) -> bytes:
        """One packet from interleaved int16 samples (2.5 to 120 ms, 48 kHz)."""
        if self._handle is None:
            raise OpusError("opus_encode failed: the encoder is closed")
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        out = (ctypes.c_ubyte * MAX_PACKET_BYTES)()
        size = libopus().opus_encode(self._handle, samples.ctypes.data_as(_SAMPLES), samples.size // self.channels,
                                     out, MAX_PACKET_BYTES)  # fmt: skip
        return bytes(out[: _check(size, "opus_encode")])

    def close(self) -> None:
        if self._handle is not None:
            libopus().opus_encoder_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


class OpusDecoderState:
    """A libopus decoder (48 kHz, interleaved int16 out).

    Args:
        channels: output channels (a mono stream decodes to both of two).
    """

    def __init__(self, channels: int = 2) -> None:
        error = ctypes.c_int()
        handle = libopus().opus_decoder_create(SAMPLE_RATE, channels, ctypes.byref(error))
        _check(error.value, "opus_decoder_create")
        self._handle: int | None = handle
        self.channels = channels

    def decode(self, data: bytes | None, frame_size: int = MAX_PACKET_SAMPLES, fec: bool = False) -> np.ndarray:
        """Decode a packet, or conceal a lost one (``data`` None: ``frame_size`` samples of PLC).

        With ``fec``, ``data`` is the packet *after* a loss: the result is ``frame_size`` samples
        ending where ``data`` begins, its last packet's worth rebuilt from ``data``'s FEC (PLC
        before that); ``data`` itself must then be decoded again normally.

        Returns:
            (samples, channels) int16.

        Raises:
            OpusError: a damaged packet, or a frame size libopus refuses.
        """
        if self._handle is None:
            raise OpusError("opus_decode failed: the decoder is closed")
        out = np.empty(frame_size * self.channels, dtype=np.int16)
        payload = _bytes(data) if data else None
        count = libopus().opus_decode(self._handle, payload, len(data) if data else 0, out.ctypes.data_as(_SAMPLES),
                                      frame_size, int(fec))  # fmt: skip
        return out[: _check(count, "opus_decode") * self.channels].reshape(-1, self.channels)

    def close(self) -> None:
        if self._handle is not None:
            libopus().opus_decoder_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()
