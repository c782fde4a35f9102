"""The RD benchmark's rate on the wire (bench/wire_rate.py): exact bytes, computed by hand, and
checked against the transport's own code (aiortc, the motion carrier, the wire meter's parser)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from bench import wire_rate as wire
from bench.rd_bench import ClipReport, Point, keep_previous, summarize
from bench.report import write_report
from bench.wire_rate import (
    Route,
    SentUnit,
    data_channel_datagrams,
    h264_rtp_payloads,
    motion_element_bytes,
    schedule_motion,
    wire_cost,
)

# --- the constants are the transport's -----------------------------------------------------------


def test_the_constants_are_those_of_the_code_they_copy() -> None:
    from aiortc import rtcsctptransport
    from aiortc.codecs import h264 as aiortc_h264

    from codec.packets import bundle
    from receiver import datagrams
    from sender.thin_link import SRTP_PREFERENCE

    assert (wire.MAX_BUNDLE_BYTES, wire.MAX_BUNDLE_MESSAGES) == (bundle.MAX_BUNDLE_BYTES, bundle.MAX_BUNDLE_MESSAGES)
    assert wire.SCTP_MAX_USER_DATA == rtcsctptransport.USERDATA_MAX_LENGTH == 1160
    assert wire.SCTP_MAX_PACKET == rtcsctptransport.SCTP_MAX_PACKET_LENGTH
    assert wire.SCTP_COMMON_HEADER == rtcsctptransport.SCTP_COMMON_HEADER_LENGTH == datagrams.SCTP_COMMON_HEADER
    assert wire.SCTP_DATA_CHUNK_HEADER == rtcsctptransport.SCTP_DATA_CHUNK_HEADER_LENGTH
    assert wire.H264_MAX_RTP_PAYLOAD == aiortc_h264.PACKET_MAX
    assert wire.IP_UDP_HEADER == datagrams.IP_UDP_HEADER[4] == 28
    assert SRTP_PREFERENCE[0] == "SRTP_AES128_CM_SHA1_32" and wire.SRTP_TAG == 4  # the call's profile
    assert wire.DTLS_RECORD_OVERHEAD == 37  # what receiver.wire measures in a call (tests/test_wire.py)
    assert wire.SACK_DATAGRAM_BYTES == 28 + 37 + 12 + 16 == 93
    assert wire.VIDEO_EXTENSION_BLOCK == 12 and wire.VIDEO_RTP_OVERHEAD == 28 + 12 + 12 + 4 == 56


@pytest.mark.parametrize(
    ("profile", "key_bytes", "tag"),
    [
        ("SRTP_PROFILE_AES128_CM_SHA1_32", 30, wire.SRTP_TAG),
        ("SRTP_PROFILE_AES128_CM_SHA1_80", 30, wire.SRTP_TAG_MANDATORY),
    ],
)
def test_the_srtp_tags_are_libsrtps(profile: str, key_bytes: int, tag: int) -> None:
    from pylibsrtp import Policy, Session

    policy = Policy(key=bytes(range(key_bytes)), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=getattr(Policy, profile))  # fmt: skip
    rtp = bytes([0x80, 96]) + bytes(10) + bytes(300)
    assert len(Session(policy).protect(rtp)) - len(rtp) == tag


def test_the_video_extension_block_is_aiortcs() -> None:
    from aiortc.codecs import HEADER_EXTENSIONS
    from aiortc.rtcrtpparameters import RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=HEADER_EXTENSIONS["video"]))
    packet = RtpPacket(payload_type=102, payload=bytes(500))
    packet.extensions.mid, packet.extensions.abs_send_time = "1", 0x123456
    assert len(packet.serialize(extensions)) == wire.RTP_HEADER + wire.VIDEO_EXTENSION_BLOCK + 500


def test_a_sack_chunk_is_16_bytes_as_aiortc_writes_it() -> None:
    from aiortc.rtcsctptransport import SackChunk

    chunk = SackChunk()
    chunk.cumulative_tsn, chunk.advertised_rwnd = 1, 65536
    assert len(bytes(chunk)) == wire.SCTP_SACK_CHUNK


# --- motion on the audio packets -----------------------------------------------------------------


def test_a_motion_element_costs_its_block_header_element_header_data_and_padding() -> None:
    assert motion_element_bytes(0) == 0  # no motion: no element, no block
    assert motion_element_bytes(1) == 4 + 4  # one-byte form: 1 + 1 -> 4
    assert motion_element_bytes(10) == 4 + 12  # 1 + 10 = 11 -> 12
    assert motion_element_bytes(16) == 4 + 20  # the largest one-byte element: 1 + 16 = 17 -> 20
    assert motion_element_bytes(17) == 4 + 20  # two-byte form: 2 + 17 = 19 -> 20
    assert motion_element_bytes(51) == 4 + 56  # 2 + 51 = 53 -> 56
    assert motion_element_bytes(255) == 4 + 260  # 2 + 255 = 257 -> 260
    with pytest.raises(ValueError, match="at most 255"):
        motion_element_bytes(256)


@pytest.mark.parametrize("size", [1, 7, 15, 16, 17, 18, 40, 51, 100, 254, 255])
def test_the_element_cost_is_what_the_carrier_adds_to_an_audio_packet(size: int) -> None:
    """The carrier's own extension writer on an aiortc RTP packet, measured by the wire meter's parser."""
    from aiortc.rtp import RtpPacket

    from receiver.datagrams import extension_element_bytes
    from sender.carrier import MotionExtensionWriter

    motion_id = 4  # what register_motion_extension() gives next to aiortc's own extensions
    bundle = bytes(range(1, size + 1)) if size < 256 else b""
    added: list[int] = []
    writer = MotionExtensionWriter(lambda: bundle, on_element=added.append)
    writer.motion_id = motion_id
    silent = MotionExtensionWriter(lambda: b"")
    silent.motion_id = motion_id
    opus = bytes(40)
    with_motion = RtpPacket(payload_type=111, payload=opus).serialize(writer)
    without = RtpPacket(payload_type=111, payload=opus).serialize(silent)
    assert len(with_motion) - len(without) == motion_element_bytes(size) == added[0]
    assert extension_element_bytes(with_motion, motion_id) == motion_element_bytes(size)


def test_motion_messages_are_grouped_by_audio_packet() -> None:
    # 25 fps, packets every 60 ms: frames at 0 and 40 ms ride on the first packet, 80 ms on the
    # second, 120 and 160 ms on the third
    messages = [(0.00, 10), (0.04, 20), (0.08, 30), (0.12, 5), (0.16, 7)]
    schedule = schedule_motion(messages)
    assert schedule.elements == (30, 30, 12) and schedule.to_data_channel == ()
    cost = wire_cost(SentUnit(t, Route.AUDIO_EXTENSION, (size,)) for t, size in messages)
    assert cost.motion_extension_bytes == (4 + 32) + (4 + 32) + (4 + 16) == 92  # 2 + 30 -> 32; 1 + 12 -> 16
    assert cost.audio_packets_with_motion == 3 and cost.total_bytes == 92 and cost.acks == 0


def test_a_full_element_pushes_the_oldest_messages_onto_the_data_channel() -> None:
    schedule = schedule_motion([(0.0, 200), (0.01, 100), (0.02, 300), (0.07, 50)])
    # 200 + 100 > 255: the 200 goes on the channel; the 300 never fits: it pushes the 100 out, goes itself
    assert schedule.to_data_channel == (200, 100, 300) and schedule.elements == (50,)
    many = schedule_motion([(0.001 * i, 1) for i in range(33)])
    assert many.elements == (32,) and many.to_data_channel == (1,)  # at most 32 messages


# --- the data channel ------------------------------------------------------------------------------


def test_a_keyframe_of_3000_bytes_takes_three_datagrams_and_three_sacks() -> None:
    # 1160 + 1160 + 680 bytes of data, each with 28 + 37 + 12 + 16 = 93 bytes of headers; measured
    # in a loopback call of two aiortc peers with receiver.wire.WireMeter: 3 datagrams, 3279 bytes;
    # 3 SACKs back, 279 bytes
    assert data_channel_datagrams(3000) == [1253, 1253, 773]
    cost = wire_cost([SentUnit(0.0, Route.DATA_CHANNEL, (3000,))])
    assert (cost.data_channel_datagrams, cost.data_channel_bytes) == (3, 3279)
    assert (cost.acks, cost.ack_bytes) == (3, 279)
    assert cost.total_bytes == 3558
    assert cost.kbps(2.0) == pytest.approx(3558 * 8 / 2 / 1000)


def test_data_chunks_are_padded_and_split_at_1160_bytes() -> None:
    # measured the same way: 21, 1161 and 2321 bytes -> 6 datagrams, 4070 bytes, 6 SACKs
    assert data_channel_datagrams(21) == [93 + 24]
    assert data_channel_datagrams(1160) == [1253]
    assert data_channel_datagrams(1161) == [1253, 93 + 4]
    assert data_channel_datagrams(2320) == [1253, 1253]
    assert sum(data_channel_datagrams(21) + data_channel_datagrams(1161) + data_channel_datagrams(2321)) == 4070


# --- H.264 in RTP ----------------------------------------------------------------------------------


def test_an_h264_frame_of_1500_bytes_takes_two_rtp_packets() -> None:
    # FU-A: 1499 bytes after the NAL header, in two fragments of 750 and 749, 2 bytes of FU headers each
    assert h264_rtp_payloads([1500]) == [752, 751]
    cost = wire_cost([SentUnit(0.0, Route.VIDEO_RTP, (1500,))])
    # each packet: IPv4/UDP 28 + RTP 12 + extensions 12 + SRTP tag 4 = 56 bytes of headers
    assert cost.video_rtp_packets == 2 and cost.video_rtp_bytes == 752 + 751 + 2 * 56 == 1615
    assert h264_rtp_payloads([300]) == [300]  # a small frame: one packet, 356 bytes on the wire
    assert wire_cost([SentUnit(0.0, Route.VIDEO_RTP, (300,))]).total_bytes == 356


def test_sps_and_pps_are_aggregated_before_a_large_idr() -> None:
    # STAP-A: 1 + (2 + 25) + (2 + 5) = 35; the 2000-byte IDR slice: 1999 -> 1000 + 999, + 2 each
    assert h264_rtp_payloads([25, 5, 2000]) == [35, 1002, 1001]
    assert h264_rtp_payloads([25, 5, 600]) == [1 + 27 + 7 + 602]  # all three fit one STAP-A
    assert h264_rtp_payloads([1299]) == [1299]
    assert h264_rtp_payloads([1301]) == [652, 652]  # 1300 -> 650 + 650, + 2 each


def test_h264_packetization_is_aiortcs() -> None:
    from aiortc.codecs.h264 import H264Encoder

    rng = random.Random(3)
    for _ in range(300):
        sizes = [rng.choice([rng.randint(2, 40), rng.randint(2, 1400), rng.randint(1200, 6000)])
                 for _ in range(rng.randint(1, 12))]  # fmt: skip
        nal_units = [bytes([0x65]) + bytes(size - 1) for size in sizes]
        assert h264_rtp_payloads(sizes) == [len(p) for p in H264Encoder._packetize(nal_units)], sizes


def test_h264_codec_says_what_it_sends() -> None:
    from aiortc.codecs.h264 import H264Encoder

    from bench.codecs import H264
    from bench.codecs.h264 import nal_unit_sizes, x264_info_sei_bytes

    from .test_bench_rd import _synthetic_clip

    clip = _synthetic_clip(8, size=64)
    codec = H264()
    packets = codec.encode(clip, 60)
    output = codec.run(clip, 60)
    assert output.sent is not None and len(output.sent) == len(packets)
    for unit, packet in zip(output.sent, packets, strict=True):
        nal_units = [n for n in H264Encoder._split_bitstream(packet) if b"x264 - core" not in n]
        assert unit.route is Route.VIDEO_RTP and unit.sizes == nal_unit_sizes(packet) == tuple(map(len, nal_units))
    start_codes = sum(len(packet) - sum(nal_unit_sizes(packet)) for packet in packets) - x264_info_sei_bytes(packets[0])
    assert sum(sum(unit.sizes) for unit in output.sent) == output.bits // 8 - start_codes
    cost = output.wire()
    assert cost is not None and cost.video_rtp_packets >= len(packets)
    assert cost.total_bytes == sum(wire.VIDEO_RTP_OVERHEAD + p for u in output.sent for p in h264_rtp_payloads(u.sizes))


def test_frozen_keyframe_travels_on_the_data_channel() -> None:
    from bench.codecs import FrozenKeyframe

    from .test_bench_rd import _synthetic_clip

    output = FrozenKeyframe().run(_synthetic_clip(3, size=64), 90)
    size = int(output.info["keyframe_bytes"])
    assert output.sent == (SentUnit(0.0, Route.DATA_CHANNEL, (size,)),)
    cost = output.wire()
    assert cost is not None and cost.total_bytes == sum(data_channel_datagrams(size)) + 93 * len(
        data_channel_datagrams(size)
    )


# --- a clip of this codec, by hand -------------------------------------------------------------------


def test_a_second_of_this_codec_on_the_wire() -> None:
    """A 3000-byte keyframe, then an 8-byte motion message per frame at 25 fps for a second."""
    units = [SentUnit(0.0, Route.DATA_CHANNEL, (3000,))]
    units += [SentUnit(k / 25, Route.AUDIO_EXTENSION, (8,)) for k in range(25)]
    cost = wire_cost(units)
    # frame k rides on packet floor(40 k / 60): 2, 1, 2, 1, ... frames per packet, 17 packets;
    # 16 bytes still fit the one-byte form: 4 + (1 + 16 -> 20) = 24; 8 bytes: 4 + (1 + 8 -> 12) = 16
    assert schedule_motion((u.time, u.sizes[0]) for u in units[1:]).elements == (16, 8) * 8 + (8,)
    assert cost.motion_extension_bytes == 8 * 24 + 9 * 16 == 336
    assert cost.total_bytes == 336 + 3279 + 279 == 3894
    assert cost.kbps(1.0) == pytest.approx(31.152)
    assert cost.info(1.0) == pytest.approx({
        "wire_motion_kbps": 2.688, "audio_packets_with_motion": 17.0, "wire_data_channel_kbps": 26.232,
        "wire_acks_kbps": 2.232, "data_channel_datagrams": 3.0})  # fmt: skip


# --- the report ----------------------------------------------------------------------------------------


METRICS = {"psnr": 25.0, "ssim": 0.8, "msssim": 0.9, "face_psnr": 24.0, "face_ssim": 0.7, "face_msssim": 0.85,
           "akd": 2.0, "mkr": 0.0}  # fmt: skip
META = {"when": "today", "command": "test", "minutes": 0.1, "size": 256, "seconds": 1.0,
        "codecs": ["h264", "fvc-neural"], "machine": "test"}  # fmt: skip


def _overall(summary: dict[str, object]) -> dict[str, Any]:
    return cast(dict[str, Any], summary["overall"])


def _h264(rate: float, wire_rate: float | None, psnr: float) -> Point:
    return Point("h264", rate, rate, {**METRICS, "psnr": psnr, "msssim": psnr / 40, "akd": 40 / psnr}, {}, 0.0,
                 wire_rate)  # fmt: skip


def test_the_report_gives_wire_rates_and_ratios_on_them(tmp_path: Path) -> None:
    h264 = [_h264(10, 20, 30.0), _h264(20, 30, 32.0), _h264(40, 50, 34.0)]
    ours = Point("fvc-neural", 90, 10.0, {**METRICS, "psnr": 32.0, "msssim": 0.8, "akd": 1.25}, {
        "wire_motion_kbps": 1.5, "wire_data_channel_kbps": 10.0, "wire_acks_kbps": 0.5}, 0.0, 12.0)  # fmt: skip
    summary = summarize([ClipReport("a.mp4", 25, 25.0, points=[*h264, ours])], META)
    ratio = {r["metric"]: r for r in _overall(summary)["ratios"]}
    wire_ratio = {r["metric"]: r for r in _overall(summary)["wire_ratios"]}
    assert ratio["psnr"]["value"] == pytest.approx(20 / 10)  # payload: H.264 needs 20 kbps for 32 dB
    assert wire_ratio["psnr"]["value"] == pytest.approx(30 / 12)  # on the wire: 30 kbps against 12
    assert _overall(summary)["wire_bd_rate"]
    write_report(summary, tmp_path)
    text = (tmp_path / "rd.md").read_text()
    assert "| codec | setting | kbps | wire kbps | PSNR dB |" in text
    assert "| fvc-neural | 90 | 10.00 | 12.00 | 32.00 |" in text and "| h264 | 10 | 10.00 | 20.00 | 30.00 |" in text
    assert "### Bandwidth ratio against H.264 on the wire (mean curve)" in text
    assert "| fvc-neural | 90 | 2.50x |" in text
    assert "| fvc-neural | 90 | 10.00 | 12.00 | 1.50 | 10.00 | 0.50 | - | 1.20x |" in text
    assert "the audio stream itself" in text and "RTCP and STUN" in text
    stored = json.loads((tmp_path / "rd.json").read_text())
    points = {(p["codec"], p["setting"]): p for p in stored["overall"]["points"]}
    assert points["fvc-neural", 90]["wire_kbps"] == 12.0 and points["h264", 40]["wire_kbps"] == 50.0
    assert stored["clips"][0]["wire_ratios"] and stored["overall"]["wire_bd_rate"]


def test_points_kept_from_before_the_wire_rate_have_none(tmp_path: Path) -> None:
    old_h264 = {"codec": "h264", "setting": 20, "kbps": 17.0, "metrics": METRICS, "info": {}, "seconds": 1.0}
    previous = {"clips": [{"clip": "a.mp4", "points": [old_h264]}]}  # an rd.json of an earlier run
    reports = [ClipReport("a.mp4", 25, 25.0, points=[Point("fvc-neural", 90, 9.0, METRICS, {}, 0.0, 11.0)])]
    assert keep_previous(reports, previous, ["fvc-neural"]) == ["h264"]
    assert reports[0].points[0].wire_kbps is None
    summary = summarize(reports, META)
    assert _overall(summary)["ratios"] and not _overall(summary)["wire_ratios"]
    write_report(summary, tmp_path)
    text = (tmp_path / "rd.md").read_text()
    assert "| h264 | 20 | 17.00 | n/a |" in text and "Points without a wire rate (n/a)" in text
    assert "on the wire (mean curve)" not in text


def test_means_have_a_wire_rate_only_when_every_clip_has_one() -> None:
    reports = [ClipReport(name, 25, 25.0, points=[Point("frozen", 90, 8.0, METRICS, {}, 0.0, wire_kbps)])
               for name, wire_kbps in (("a.mp4", 10.0), ("b.mp4", 12.0))]  # fmt: skip
    assert _overall(summarize(reports, META))["points"][0]["wire_kbps"] == 11.0
    reports.append(ClipReport("c.mp4", 25, 25.0, points=[Point("frozen", 90, 8.0, METRICS)]))
    mean = _overall(summarize(reports, META))["points"][0]
    assert mean["wire_kbps"] is None and np.isfinite(mean["kbps"])
