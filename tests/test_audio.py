"""The call's sound: the speech Opus encoder (sender.audio), the concealing decoder
(receiver.audio), their hooks into aiortc, and the silent carrier track (sender.sources)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiortc.rtcrtpreceiver
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket, is_rtcp

import receiver.audio
from codec.opus import OpusDecoderState, OpusEncoderState, OpusError, libopus_candidates, packet_samples
from receiver.audio import ConcealingOpusDecoder, PassingJitterBuffer, conceal_audio_loss, install_concealing_decoder
from sender.__main__ import main as sender_main
from sender.audio import SpeechOpusEncoder, check_audio_kbps, offer_opus_parameters, use_speech_encoder
from sender.sources import FileAudioTrack, PacedAudioTrack, SilentAudioTrack

from .conftest import shared_clip

RATE = 48000
PACKET = 2880  # 60 ms
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=96)


def speech_like(seconds: float, pauses: bool = False, seed: int = 0) -> np.ndarray:
    """Mono int16 at 48 kHz: a gliding harmonic voice (140 Hz) in syllables of ~3 per second, with
    bursts of hiss; with ``pauses`` the syllables fall silent between them."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(RATE * seconds)) / RATE
    phase = 2 * np.pi * np.cumsum(140 + 25 * np.sin(2 * np.pi * 0.7 * t)) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.sin(2 * np.pi * 3.1 * t)
    envelope = np.clip(syllables, 0, None) ** 0.7 if pauses else 0.55 + 0.45 * syllables
    hiss = rng.normal(0, 0.3, t.size) * (np.sin(2 * np.pi * 1.3 * t) > 0.8)
    return np.clip((voice * envelope + hiss) * 6000, -32000, 32000).astype(np.int16)


def stereo_frames(pcm: np.ndarray, samples: int = 960) -> Iterator[Any]:
    """20 ms s16 stereo frames, what the sender's tracks give."""
    for start in range(0, len(pcm) - samples + 1, samples):
        frame = av.AudioFrame.from_ndarray(np.repeat(pcm[start : start + samples], 2)[None], format="s16",
                                           layout="stereo")  # fmt: skip
        frame.sample_rate = RATE
        yield frame


def encode(pcm: np.ndarray, kbps: float = 12) -> tuple[SpeechOpusEncoder, list[tuple[bytes, int]]]:
    encoder = SpeechOpusEncoder(kbps)
    packets = []
    for frame in stereo_frames(pcm):
        payloads, timestamp = encoder.encode(frame)
        assert len(payloads) <= 1  # aiortc would send several under one timestamp
        packets += [(payload, timestamp) for payload in payloads]
    return encoder, packets


def decode_with_loss(
    packets: list[tuple[bytes, int]], lost: np.ndarray, decoder: ConcealingOpusDecoder | None = None
) -> tuple[ConcealingOpusDecoder, np.ndarray]:
    """Decode the packets that were not lost; the left channel, after checking the pts run on."""
    decoder = decoder or ConcealingOpusDecoder()
    frames = [f for (data, ts), gone in zip(packets, lost, strict=True) if not gone
              for f in decoder.decode(JitterFrame(data, ts))]  # fmt: skip
    for before, after in itertools.pairwise(frames):
        assert after.pts == before.pts + before.samples, "a hole in the decoded sound"
    assert all(f.format.name == "s16" and f.layout.name == "stereo" and f.sample_rate == RATE for f in frames)
    return decoder, np.concatenate([f.to_ndarray().reshape(-1, 2)[:, 0] for f in frames]).astype(np.float64)


def losses(count: int, share: float = 0.2, seed: int = 1) -> np.ndarray:
    lost = np.random.default_rng(seed).random(count) < share
    lost[0] = lost[-1] = False  # the sound starts and ends with a packet that arrived
    return lost


# --- the encoder --------------------------------------------------------------------------------


def test_speech_is_one_60ms_mono_packet_per_60ms_at_12_kbps() -> None:
    encoder, packets = encode(speech_like(6.0))
    assert len(packets) == 100
    assert [ts for _, ts in packets] == [i * PACKET for i in range(100)]
    assert all(packet_samples(data) == PACKET and not data[0] & 0x04 for data, _ in packets)  # 60 ms, mono
    kbps = sum(len(data) for data, _ in packets) * 8 / 6.0 / 1000
    assert 9.0 < kbps < 12.6, f"{kbps:.1f} kbps"  # VBR spends a little less on a voice this simple (d14: 11.9)
    _, richer = encode(speech_like(6.0), kbps=24)
    assert sum(len(data) for data, _ in richer) * 8 / 6.0 / 1000 > 1.5 * kbps  # the setting is followed
    assert encoder.stats.packets == 100 and encoder.stats.dtx_packets == 0 and encoder.stats.dropped_backlog == 0


def test_silence_still_sends_a_tiny_packet_every_60ms() -> None:
    encoder, packets = encode(np.zeros(RATE * 3, np.int16))
    assert [ts for _, ts in packets] == [i * PACKET for i in range(50)]
    assert all(packet_samples(data) == PACKET for data, _ in packets)
    assert encoder.stats.dtx_packets >= 40  # 1-byte DTX packets, a comfort-noise update now and then
    assert sum(len(data) for data, _ in packets) * 8 / 3.0 < 1000  # under 1 kbps


def test_a_long_input_frame_is_handed_out_one_packet_per_call() -> None:
    encoder = SpeechOpusEncoder()
    pcm = speech_like(0.36)
    frame = next(stereo_frames(pcm, len(pcm)))  # 360 ms in one frame: six packets
    payloads, timestamp = encoder.encode(frame)
    assert len(payloads) == 1 and timestamp == 2 * PACKET  # the first two made way for the newest three
    assert encoder.stats.dropped_backlog == 2
    silence = stereo_frames(np.zeros(3 * 960, np.int16))  # the three kept go out on the next calls
    kept = [([data], ts) for data, ts in encoder._pending]
    assert [ts for _, ts in kept] == [3 * PACKET, 4 * PACKET, 5 * PACKET]
    assert [encoder.encode(frame) for frame in silence] == kept


def test_bitrate_limits() -> None:
    assert check_audio_kbps(6) == 6 and check_audio_kbps(64) == 64
    with pytest.raises(ValueError, match=r"^the audio bitrate must be 6 to 64 kbps, not 5$"):
        SpeechOpusEncoder(5)
    with pytest.raises(ValueError, match=r"^an Opus packet lasts 10, 20, 40 or 60 ms, not 30$"):
        SpeechOpusEncoder(packet_ms=30)


def test_the_cli_refuses_a_bitrate_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["call", "--video", "x.mp4", "--receiver", "http://127.0.0.1:1", "--token", "t", "--audio-kbps", "80"]
    assert sender_main(argv) == 2
    assert capsys.readouterr().err == "error: --audio-kbps: the audio bitrate must be 6 to 64 kbps, not 80\n"


def test_libopus_is_the_one_pyav_bundles() -> None:
    if not libopus_candidates():
        pytest.skip("this PyAV bundles no libopus (built from source): the system's is used")
    assert all("opus" in path.name for path in libopus_candidates())


# --- the decoder --------------------------------------------------------------------------------


def test_20_percent_loss_leaves_no_hole_in_the_sound() -> None:
    _, packets = encode(speech_like(6.0))
    lost = losses(len(packets))
    decoder, sound = decode_with_loss(packets, lost)
    assert len(sound) == len(packets) * PACKET  # every lost 60 ms was filled
    assert decoder.stats.concealed_samples == lost.sum() * PACKET
    assert decoder.stats.fec_recovered == 0  # libopus codes no FEC at 12 kbps: all of it is PLC
    assert decoder.stats.packets == (~lost).sum() and decoder.stats.invalid == 0


def test_in_band_fec_rebuilds_a_lost_packet_better_than_plc(monkeypatch: pytest.MonkeyPatch) -> None:
    _, packets = encode(speech_like(6.0), kbps=20)  # libopus codes FEC from about 17 kbps
    lost = losses(len(packets))
    _, reference = decode_with_loss(packets, np.zeros(len(packets), bool))
    with_fec, sound = decode_with_loss(packets, lost)
    monkeypatch.setattr(receiver.audio, "packet_has_fec", lambda data: False)
    plc_only, plc_sound = decode_with_loss(packets, lost)
    # a lost packet followed by one that arrived (with FEC in it) is rebuilt
    rebuilt = [i for i in np.flatnonzero(lost) if not lost[i + 1]]
    assert with_fec.stats.fec_recovered >= 0.6 * len(rebuilt) and plc_only.stats.fec_recovered == 0
    assert with_fec.stats.concealed_samples < plc_only.stats.concealed_samples == lost.sum() * PACKET

    def correlation(decoded: np.ndarray) -> float:
        where = np.concatenate([np.arange(i * PACKET, (i + 1) * PACKET) for i in rebuilt])
        return float(np.corrcoef(reference[where], decoded[where])[0, 1])

    fec, plc = correlation(sound), correlation(plc_sound)
    assert fec > 0.4 and fec > plc + 0.2, f"correlation with the lossless decoding: FEC {fec:.2f}, PLC {plc:.2f}"


def test_damaged_packets_are_counted_and_concealed() -> None:
    _, packets = encode(speech_like(1.2))
    damaged = list(packets)
    damaged[3] = (b"", packets[3][1])  # empty
    damaged[6] = (b"\xff\xff\x00", packets[6][1])  # not Opus
    damaged[9] = (bytes([packets[9][0][0] | 0x01]) + bytes(5), packets[9][1])  # two frames of 2.5 bytes
    damaged[12] = (packets[12][0][:10], packets[12][1])  # cut short: Opus cannot always tell, no harm either way
    decoder, sound = decode_with_loss(damaged, np.zeros(len(packets), bool))
    assert 3 <= decoder.stats.invalid <= 4
    assert len(sound) == len(packets) * PACKET  # the damaged ones were concealed like lost ones
    assert decoder.decode(JitterFrame(packets[5][0], packets[5][1])) == [] and decoder.stats.late == 1


def test_a_long_silence_on_the_wire_is_a_pause_not_a_loss() -> None:
    _, packets = encode(speech_like(0.6))
    decoder = ConcealingOpusDecoder()
    decoder.decode(JitterFrame(packets[0][0], 0))
    (frame,) = decoder.decode(JitterFrame(packets[1][0], 5 * RATE))
    assert frame.pts == 5 * RATE and frame.samples == PACKET and decoder.stats.pauses == 1


def test_opus_state_errors_are_clear() -> None:
    state = OpusDecoderState()
    with pytest.raises(OpusError, match=r"^opus_decode failed: corrupted stream$"):
        state.decode(b"\xff\xff\x00")
    state.close()
    with pytest.raises(OpusError, match=r"^opus_decode failed: the decoder is closed$"):
        state.decode(None, 960)
    encoder = OpusEncoderState(12000)
    with pytest.raises(OpusError, match=r"^opus_encode failed: invalid argument$"):
        encoder.encode(np.zeros(1000, np.int16))  # not a frame size Opus has


def test_the_passing_jitter_buffer_drops_only_late_and_repeated_packets() -> None:
    buffer = PassingJitterBuffer()

    def add(sequence: int) -> int | None:
        packet = RtpPacket(payload_type=96, sequence_number=sequence, timestamp=sequence * PACKET)
        packet._data = b"x"  # type: ignore[attr-defined]
        pli, frame = buffer.add(packet)
        assert pli is False
        return None if frame is None else frame.timestamp // PACKET

    assert [add(s) for s in (65534, 65535, 1, 0, 1, 2, 40000)] == [65534, 65535, 1, None, None, 2, 40000]
    assert buffer.late == 2


# --- the hooks into aiortc ------------------------------------------------------------------------


def test_the_speech_encoder_is_the_one_the_rtp_sender_uses() -> None:
    async def scenario() -> None:
        pc = RTCPeerConnection()
        sender = pc.addTrack(SilentAudioTrack())
        encoder = SpeechOpusEncoder(12)
        use_speech_encoder(pc, sender, encoder)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = offer_opus_parameters(pc.localDescription.sdp, encoder.kbps)
        assert " UDP/TLS/RTP/SAVPF 96\r\n" in sdp and "PCMU" not in sdp  # Opus only
        assert "a=fmtp:96 useinbandfec=1;usedtx=1;maxaveragebitrate=12000;stereo=0\r\na=ptime:60\r\n" in sdp
        assert offer_opus_parameters(sdp, 12) == sdp  # already there: unchanged
        frame = None
        while frame is None:  # aiortc's own path: _next_encoded_frame makes an encoder only when it has none
            frame = await sender._next_encoded_frame(pc.getTransceivers()[0]._codecs[0])
        assert len(frame.payloads) == 1 and packet_samples(frame.payloads[0]) == PACKET
        assert encoder.stats.packets == 1 and frame.timestamp == 0
        await pc.close()

    asyncio.run(scenario())


def test_the_concealing_decoder_is_the_one_the_receiver_thread_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", aiortc.rtcrtpreceiver.get_decoder)  # undone after
    install_concealing_decoder()
    install_concealing_decoder()  # idempotent
    assert isinstance(aiortc.rtcrtpreceiver.get_decoder(OPUS), ConcealingOpusDecoder)
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    assert isinstance(aiortc.rtcrtpreceiver.get_decoder(vp8), Vp8Decoder)
    assert not isinstance(aiortc.codecs.get_decoder(OPUS), ConcealingOpusDecoder)  # only the receiver's name

    _, packets = encode(speech_like(0.6))

    async def scenario() -> list[Any]:
        tasks: queue.Queue[Any] = queue.Queue()
        output: asyncio.Queue[Any] = asyncio.Queue()
        for index, (data, timestamp) in enumerate(packets):
            if index != 4:  # lost
                tasks.put((OPUS, JitterFrame(data, timestamp)))
        tasks.put(None)
        # aiortc's decoder thread, as RTCRtpReceiver.receive starts it
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(aiortc.rtcrtpreceiver.decoder_worker, loop, tasks, output, threading.Event())
        frames = []
        while (frame := await output.get()) is not None:
            frames.append(frame)
        return frames

    frames = asyncio.run(scenario())
    assert [f.pts for f in frames] == [i * PACKET for i in (0, 1, 2, 3, 4, 6, 7, 8, 9)]
    assert frames[4].samples == 2 * PACKET  # the lost packet, concealed, then the one after it


def test_conceal_audio_loss_swaps_the_jitter_buffer_of_that_track_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", aiortc.rtcrtpreceiver.get_decoder)

    async def scenario() -> None:
        caller, callee = RTCPeerConnection(), RTCPeerConnection()
        caller.addTrack(SilentAudioTrack())
        swapped = []
        callee.on("track", lambda track: swapped.append(conceal_audio_loss(callee, track)))
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        receiver_ = callee.getTransceivers()[0].receiver
        assert swapped == [True]
        assert isinstance(receiver_._RTCRtpReceiver__jitter_buffer, PassingJitterBuffer)
        assert conceal_audio_loss(callee, SilentAudioTrack()) is False  # not one of its tracks
        await caller.close()
        await callee.close()

    asyncio.run(scenario())
    assert isinstance(aiortc.rtcrtpreceiver.get_decoder(OPUS), ConcealingOpusDecoder)


class SpeechTrack(PacedAudioTrack):
    """``speech_like`` in 20 ms frames, in real time."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._frames = stereo_frames(speech_like(seconds))

    async def recv(self) -> Any:
        return await self._paced(next(self._frames, None) or self.silence())


def test_a_call_that_loses_20_percent_of_its_audio_packets_has_a_continuous_sound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both hooks on a real aiortc connection on loopback, 20 % of the RTP packets dropped."""
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", aiortc.rtcrtpreceiver.get_decoder)
    decoders: list[ConcealingOpusDecoder] = []

    class Recorded(ConcealingOpusDecoder):
        def __init__(self) -> None:
            super().__init__()
            decoders.append(self)

    monkeypatch.setattr(receiver.audio, "ConcealingOpusDecoder", Recorded)
    seconds = 2.4

    async def scenario() -> tuple[list[Any], int, int]:
        caller, callee = RTCPeerConnection(), RTCPeerConnection()
        sender = caller.addTrack(SpeechTrack(seconds + 1))
        use_speech_encoder(caller, sender, SpeechOpusEncoder(12))
        frames: list[tuple[float, Any]] = []

        async def collect(track: Any) -> None:
            while True:
                frames.append((time.monotonic(), await track.recv()))

        tasks = []
        callee.on("track", lambda track: (conceal_audio_loss(callee, track),
                                          tasks.append(asyncio.ensure_future(collect(track)))))  # fmt: skip
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        rng, sent, dropped = random.Random(3), [0], [0]
        transport = sender.transport
        send_rtp = transport._send_rtp

        async def lossy(data: bytes) -> None:
            if not is_rtcp(data):
                sent[0] += 1
                if sent[0] > 2 and rng.random() < 0.2:
                    dropped[0] += 1
                    return
            await send_rtp(data)

        transport._send_rtp = lossy
        while not frames or frames[-1][0] - frames[0][0] < seconds:
            await asyncio.sleep(0.05)
        await caller.close()
        await callee.close()
        for task in tasks:
            task.cancel()
        return [frame for _, frame in frames], sent[0], dropped[0]

    frames, sent, dropped = asyncio.run(scenario())
    assert dropped >= 0.1 * sent
    for before, after in itertools.pairwise(frames):
        assert after.pts == before.pts + before.samples, "a hole in the received sound"
    (decoder,) = decoders
    assert decoder.stats.concealed_samples > 0 and decoder.stats.late == 0 and decoder.stats.invalid == 0


# --- the sender's tracks ------------------------------------------------------------------------


def test_the_silent_track_is_paced_on_the_video_clock() -> None:
    async def scenario() -> tuple[list[Any], float]:
        start = time.monotonic() + 0.05
        track = SilentAudioTrack(lambda: start if time.monotonic() >= start else None)
        frames = [await track.recv() for _ in range(6)]
        return frames, time.monotonic() - start

    frames, elapsed = asyncio.run(scenario())
    assert [f.pts for f in frames] == [i * 960 for i in range(6)]
    assert all(not f.to_ndarray().any() and f.sample_rate == RATE for f in frames)
    assert 0.11 < elapsed < 0.2  # the sixth frame (100-120 ms) leaves once heard: 120 ms after the start


def test_a_file_whose_sound_ends_goes_on_in_silence(tmp_path: Path) -> None:
    path = tmp_path / "beep.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for frame in stereo_frames(speech_like(0.1)):
            mono = av.AudioFrame.from_ndarray(frame.to_ndarray()[:, ::2].copy(), format="s16", layout="mono")
            mono.sample_rate = RATE
            for packet in stream.encode(mono):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)

    async def scenario() -> list[Any]:
        track = FileAudioTrack(path, lambda: time.monotonic() - 10)  # started long ago: no waiting
        return [await track.recv() for _ in range(10)]

    frames = asyncio.run(scenario())
    assert [f.samples for f in frames] == [960] * 10 and [f.pts for f in frames] == [i * 960 for i in range(10)]
    assert frames[0].to_ndarray().any() and not any(f.to_ndarray().any() for f in frames[6:])


# --- the real clip --------------------------------------------------------------------------------


def test_the_speech_of_a_real_clip_at_12_kbps() -> None:
    clip = shared_clip("d14.mp4")
    with av.open(str(clip)) as container:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE, frame_size=960)
        frames = [f for frame in container.decode(container.streams.audio[0]) for f in resampler.resample(frame)]
    encoder = SpeechOpusEncoder(12)
    sizes = [len(p) for frame in frames[: 50 * 10] for p in encoder.encode(frame)[0]]  # 10 s
    kbps = sum(sizes) * 8 / (len(sizes) * 0.06) / 1000
    assert len(sizes) == 166 and 10.5 < kbps < 13.0, f"{kbps:.1f} kbps"
