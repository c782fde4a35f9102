"""Writing an RD summary as JSON, a Markdown table and rate-distortion plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import wire_rate as wire
from .metrics import IRIS_IDS, MOUTH_CORNER_IDS, MOUTH_INNER_LIP_IDS, OPEN_MOUTH_MARGIN

__all__ = ["write_report"]

_LABELS = {
    "psnr": "PSNR dB", "ssim": "SSIM", "msssim": "MS-SSIM", "face_psnr": "face PSNR", "face_ssim": "face SSIM",
    "face_msssim": "face MS-SSIM", "akd": "AKD px", "mkr": "MKR", "mouth_psnr": "open-mouth face PSNR",
    "open_frames": "open share", "iris_px": "iris px", "cvvdp": "cvvdp JOD",
}  # fmt: skip
#: decimals of a metric in tables (4 unless named)
_DIGITS = {"psnr": 2, "face_psnr": 2, "akd": 2, "mkr": 3, "mouth_psnr": 2, "open_frames": 3, "iris_px": 2, "cvvdp": 2}
#: what the open-mouth and iris columns are
MOUTH_EYE_NOTE = (
    "Open-mouth face PSNR: the face PSNR over the frames whose mouth is open wider than in the keyframe (the first "
    f"frame with a face): inner-lip gap (mesh {MOUTH_INNER_LIP_IDS[0]}-{MOUTH_INNER_LIP_IDS[1]}) / mouth width "
    f"(corners {MOUTH_CORNER_IDS[0]}-{MOUTH_CORNER_IDS[1]}) on the original frame above the keyframe's by more than "
    f"{OPEN_MOUTH_MARGIN:g}; means over clips weighted by those frames (a clip without any has none: n/a). Open "
    "share: their share of the frames (weighted by frames). Iris px: mean distance of the two iris centres "
    f"(mesh {IRIS_IDS[0]}, {IRIS_IDS[1]}) found on the output and on the original frame, frames where both have a "
    "face. n/a in these columns: a point kept from a run before they were measured. cvvdp JOD: ColorVideoVDP's "
    "score (10: identical; `--cvvdp`), n/a where not measured."
)

_PLOTTED = (("psnr", "PSNR (dB, RGB)"), ("msssim", "MS-SSIM"), ("akd", "AKD (px, lower is better)"))


def _number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


#: how the rate on the wire is counted (the constants of :mod:`bench.wire_rate`)
WIRE_NOTE = (
    "Rate on the wire (`bench/wire_rate.py`): the video's bytes as a call puts them on the network, every header "
    "included, both directions, as sent by aiortc (the call's transport). This codec: each motion message rides on "
    f"the call's Opus RTP packets (one every {wire.AUDIO_PACKET_SECONDS * 1000:.0f} ms), the messages of a "
    "packet's interval in one RFC 8285 header-extension element: counted is what the element adds to the packet "
    f"(block header {wire.EXTENSION_BLOCK_HEADER} B + element header 1 or 2 B + data, padded to 4 B); keyframes "
    f"and control messages go on the reliable SCTP data channel: per datagram (at most "
    f"{wire.SCTP_MAX_USER_DATA} B of a message) IPv4/UDP {wire.IP_UDP_HEADER} + DTLS {wire.DTLS_RECORD_OVERHEAD} "
    f"+ SCTP {wire.SCTP_COMMON_HEADER} + DATA chunk {wire.SCTP_DATA_CHUNK_HEADER} B, and a "
    f"{wire.SACK_DATAGRAM_BYTES}-byte SACK datagram back for each. The frozen keyframe travels as this codec's "
    "keyframes. H.264: each frame's NAL units in RTP packets (SPS and PPS aggregated in a STAP-A packet, NAL "
    f"units above {wire.H264_MAX_RTP_PAYLOAD} B in FU-A fragments), each packet with IPv4/UDP "
    f"{wire.IP_UDP_HEADER} + RTP {wire.RTP_HEADER} + header extensions {wire.VIDEO_EXTENSION_BLOCK} (mid, "
    f"abs-send-time) + SRTP tag {wire.SRTP_TAG} (AES128_CM_HMAC_SHA1_32, the profile this call negotiates) = "
    f"{wire.VIDEO_RTP_OVERHEAD} B; a browser's H.264 call would have WebRTC's mandatory SRTP profile, whose "
    f"{wire.SRTP_TAG_MANDATORY}-byte tag adds {wire.SRTP_TAG_MANDATORY - wire.SRTP_TAG} B a packet (about "
    f"{(wire.SRTP_TAG_MANDATORY - wire.SRTP_TAG) * 8 * 25 / 1000:.1f} kbps at 25 frames/s): not counted here, "
    "H.264 gets the smaller overhead. Not counted in either: the audio stream itself (a facevc call and an H.264 "
    "call both carry it), RTCP and STUN (small, and about the same for both), the handshakes, retransmissions "
    "and loss."
)


def _points_table(points: list[dict[str, Any]]) -> list[str]:
    metrics = list(_LABELS)
    lines = [
        "| codec | setting | kbps | wire kbps | " + " | ".join(_LABELS[m] for m in metrics) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(metrics),
    ]
    for p in points:
        cells = [_number(p["metrics"].get(m), _DIGITS.get(m, 4)) for m in metrics]
        rates = f"{p['kbps']:.2f} | {_number(p.get('wire_kbps'))}"
        lines.append(f"| {p['codec']} | {p['setting']:g} | {rates} | " + " | ".join(cells) + " |")
    return lines


#: the parts of the rate on the wire, in table order: (info key, column)
_WIRE_PARTS = (
    ("wire_motion_kbps", "motion on audio packets"),
    ("wire_data_channel_kbps", "data channel"),
    ("wire_acks_kbps", "SACKs back"),
    ("wire_rtp_kbps", "RTP packets"),
)


def _wire_table(points: list[dict[str, Any]]) -> list[str]:
    """Each point's rate on the wire, its parts (kbps) and its ratio to the payload rate."""
    rows = [p for p in points if p.get("wire_kbps") is not None]
    if not rows:
        return []
    lines = [
        "| codec | setting | payload kbps | wire kbps | " + " | ".join(label for _, label in _WIRE_PARTS)
        + " | wire / payload |",
        "|---|---:|---:|---:|" + "---:|" * len(_WIRE_PARTS) + "---:|",
    ]  # fmt: skip
    for p in rows:
        parts = " | ".join(_number(p["info"].get(key)) if key in p["info"] else "-" for key, _ in _WIRE_PARTS)
        growth = p["wire_kbps"] / p["kbps"] if p["kbps"] > 0 else float("nan")
        lines.append(f"| {p['codec']} | {p['setting']:g} | {p['kbps']:.2f} | {p['wire_kbps']:.2f} | {parts} | "
                     f"{_number(growth)}x |")  # fmt: skip
    return lines


def _bd_line(bd_rates: list[dict[str, Any]], what: str) -> list[str]:
    bd = [b for b in bd_rates if b["bd_rate_percent"] is not None]
    if not bd:
        return []
    return [
        f"BD-rate against H.264 {what}(piecewise-linear, overlapping quality range): "
        + ", ".join(f"{b['codec']} on {_LABELS[b['metric']]} {b['bd_rate_percent']:+.1f} %" for b in bd),
        "",
    ]


def _ratio_table(ratios: list[dict[str, Any]]) -> list[str]:
    if not ratios:
        return []
    rows: dict[tuple[str, float], dict[str, str]] = {}
    for r in ratios:
        rows.setdefault((r["codec"], r["setting"]), {})[r["metric"]] = r["text"]
    metrics = sorted({r["metric"] for r in ratios}, key=["psnr", "msssim", "akd", "cvvdp"].index)
    lines = [
        "| codec | setting | " + " | ".join(f"ratio on {_LABELS[m]}" for m in metrics) + " |",
        "|---|---:|" + "---|" * len(metrics),
    ]
    for (codec, setting), cells in rows.items():
        lines.append(f"| {codec} | {setting:g} | " + " | ".join(cells.get(m, "n/a") for m in metrics) + " |")
    return lines


def _open_mouth_line(clips: list[dict[str, Any]]) -> list[str]:
    """How many frames the open-mouth column stands on (nothing for a summary without the counts)."""
    counted = [c for c in clips if not c["error"] and c.get("open_mouth_frames") is not None]
    if not counted:
        return []
    opened = sum(c["open_mouth_frames"] for c in counted)
    frames = sum(c["frames"] for c in counted)
    with_some = sum(c["open_mouth_frames"] > 0 for c in counted)
    return [
        f"Open-mouth frames: {opened} of {frames} ({100 * opened / max(frames, 1):.1f} %), in {with_some} of "
        f"{len(counted)} clips.",
        "",
    ]


def _markdown(summary: dict[str, Any]) -> str:
    meta = summary["meta"]
    overall = summary["overall"]
    span = f"first {meta['seconds']} s each" if meta["seconds"] else "whole clips"
    lines = [
        "# Rate-distortion benchmark",
        "",
        f"{meta['when']}: {overall['clips']} clips, {span}, crops {meta['size']}x{meta['size']}"
        f", contenders: {', '.join(meta['codecs'])}. Regenerate with `{meta['command']}` ({meta['minutes']:.1f} min).",
        *(
            [
                "",
                f"Points of {', '.join(meta['kept_from']['codecs'])} are kept from the run of "
                f"{meta['kept_from']['when']} (`{meta['kept_from']['command']}`).",
            ]
            if meta.get("kept_from")
            else []
        ),
        *(["", f"fvc-neural renders with the released weights `{meta['model']}`."] if meta.get("model") else []),
        "",
        "Rates are measured (payload bytes x 8 / duration). H.264: libx264 as in a call (zerolatency, one IDR, "
        "CBR-like VBV of 1 s, qmax 51, 1 thread); its informational SEI is not counted, SPS/PPS are. "
        "This codec: keyframe + motion + control packet bytes. Metrics are per-frame means; face = the convex hull "
        "of the original frame's landmarks; AKD = mean distance of the 478 tracker landmarks, MKR = share of frames "
        "whose output has no face. Bandwidth ratio = rate H.264 needs for the same quality / this rate.",
        "",
        MOUTH_EYE_NOTE,
        "",
        WIRE_NOTE,
        *(
            ["", "Points without a wire rate (n/a) were kept from a run before it was measured: re-measure them."]
            if any(p.get("wire_kbps") is None for p in overall["points"])
            else []
        ),
        "",
        "## All clips (means)",
        "",
        *_points_table(overall["points"]),
        "",
        *_open_mouth_line(summary["clips"]),
    ]
    anchors = overall.get("h264_anchors") or {}
    if anchors:

        def at(key: str) -> str:
            below = " or less (its lowest rate already does better)" if anchors.get(f"h264_{key}_below_floor") else ""
            return f"{_number(anchors.get(f'h264_kbps_at_{key}'), 1)} kbps{below}"

        lines += [
            f"H.264 reaches PSNR 24 dB at {at('psnr_24')} and MS-SSIM 0.90 at {at('msssim_0.90')} (mean curve); "
            f"its lowest measured rate is {_number(anchors.get('h264_lowest_kbps'), 1)} kbps.",
            "",
        ]
    ratio_lines = _ratio_table(overall["ratios"])
    if ratio_lines:
        lines += ["### Bandwidth ratio against H.264 (mean curve)", "", *ratio_lines, ""]
    lines += _bd_line(overall["bd_rate"], "")
    wire_ratio_lines = _ratio_table(overall.get("wire_ratios", []))
    if wire_ratio_lines:
        lines += [
            "### Bandwidth ratio against H.264 on the wire (mean curve)",
            "",
            "The same, with every contender's rate on the wire (H.264's curve too): the bandwidth a user would see.",
            "",
            *wire_ratio_lines,
            "",
        ]
    lines += _bd_line(overall.get("wire_bd_rate", []), "on the wire ")
    wire_lines = _wire_table(overall["points"])
    if wire_lines:
        lines += ["### Rate on the wire, part by part (kbps)", "", *wire_lines, ""]
    lines += ["## Per clip", ""]
    for clip in summary["clips"]:
        if clip["error"]:
            lines += [f"### {clip['clip']}", "", f"Not measured: {clip['error']}", ""]
            continue
        opened = clip.get("open_mouth_frames")
        opened_text = "" if opened is None else f", {opened} open-mouth"
        lines += [f"### {clip['clip']} ({clip['frames']} frames{opened_text}, {clip['fps']:g} fps)", "",
                  *_points_table(clip["points"]), ""]  # fmt: skip
        ratio_lines = _ratio_table(clip["ratios"])
        if ratio_lines:
            lines += [*ratio_lines, ""]
        wire_ratio_lines = _ratio_table(clip.get("wire_ratios", []))
        if wire_ratio_lines:
            lines += ["Bandwidth ratio on the wire:", "", *wire_ratio_lines, ""]
    if summary["errors"]:
        lines += ["## Clips not measured", ""] + [f"- {e['clip']}: {e['error']}" for e in summary["errors"]] + [""]
    return "\n".join(lines)


def _plot(points: list[dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    codecs = sorted({p["codec"] for p in points}, key=lambda c: (c != "h264", c))
    for axis, (metric, label) in zip(axes, _PLOTTED, strict=True):
        for codec in codecs:
            own = sorted((p for p in points if p["codec"] == codec), key=lambda p: p["kbps"])
            rates = [p["kbps"] for p in own]
            values = [p["metrics"][metric] for p in own]
            style = (
                {"marker": "o", "linewidth": 1.5}
                if codec == "h264"
                else {"marker": "*", "markersize": 12, "linestyle": "--"}
            )
            (line,) = axis.plot(rates, values, label=codec, **style)
            if all(p.get("wire_kbps") is not None for p in own):  # the same points on the wire: hollow, dotted
                on_wire = sorted((p["wire_kbps"], p["metrics"][metric]) for p in own)
                wire_style = {**style, "linestyle": ":", "markerfacecolor": "none", "color": line.get_color()}
                axis.plot(*zip(*on_wire, strict=True), label=f"{codec} on the wire", **wire_style)
        axis.set_xscale("log")
        axis.set_xlabel("kbps (log); hollow: rate on the wire")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _finite(value: Any) -> Any:
    """NaN and infinities become null, so that the file is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_report(summary: dict[str, Any], out: Path) -> None:
    """``rd.json``, ``rd.md``, ``rd.png`` (all clips) and ``clips/<clip>.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "rd.json").write_text(json.dumps(_finite(summary), indent=1, allow_nan=False))
    (out / "rd.md").write_text(_markdown(summary))
    if summary["overall"]["points"]:
        _plot(
            summary["overall"]["points"],
            f"All clips ({summary['overall']['clips']}), mean of each setting",
            out / "rd.png",
        )
    (out / "clips").mkdir(exist_ok=True)
    for clip in summary["clips"]:
        if clip["points"]:
            _plot(clip["points"], clip["clip"], out / "clips" / f"{Path(clip['clip']).stem}.png")
