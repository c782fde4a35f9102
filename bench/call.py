"""``python -m bench call``: the bytes a loopback call really puts on the network.

The product runs as a user runs it, in a process of its own: ``python -m receiver demo --video
CLIP --headless --seconds S --json FILE`` (the receiver, and the sender as its own process).  The
receiver's wire meter (``receiver.wire``) counts every UDP datagram of the call's peer
connection at the socket, with IP and UDP headers, per stream and direction; the handshake
(ICE checks, DTLS, SCTP, data channels opening) is reported apart.  Outputs ``call.json`` (the
demo's whole report) and ``call.md`` (the table), and prints the table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["call_table", "run_call", "write_call"]

#: the wire meter's streams, in the order of the table (``receiver.wire.STREAMS``)
STREAMS = ("audio", "rtcp", "motion", "keyframe", "control", "sctp_ack", "sctp_other", "dtls_other", "stun", "unknown")
DIRECTIONS = ("received", "sent")
#: the last lines of the demo's output shown when it fails
TAIL_LINES = 15


def run_call(clip: Path, seconds: float, model: str = "mesh") -> dict[str, Any]:
    """Run the loopback call with a progress bar; returns the demo's JSON report (its ``wire``
    key: the meter's snapshot).

    Raises:
        RuntimeError: the demo failed (the end of its output is in the message).
    """
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="bench-call-") as folder:
        report = Path(folder) / "call.json"
        command = [sys.executable, "-m", "receiver", "demo", "--video", str(clip), "--headless",
                   "--seconds", f"{seconds:g}", "--port", "0", "--model", model, "--json", str(report)]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output: list[str] = []
        started: list[float] = []  # when the receiver listened (the sender starts right after)

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line.rstrip("\n"))
                if line.startswith("viewer page:") and not started:
                    started.append(time.monotonic())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        progress = tqdm(total=round(seconds), desc=f"call on {clip.name}", bar_format="{desc}: {n}/{total} s {bar}")
        with progress as bar:
            while process.poll() is None:
                time.sleep(0.25)
                done = min(round(seconds), int(time.monotonic() - started[0])) if started else 0
                bar.update(done - bar.n)
        reader.join(5)
        if process.returncode != 0 or not report.is_file():
            tail = "\n".join(output[-TAIL_LINES:]) or "no output"
            raise RuntimeError(f"the loopback call failed (exit code {process.returncode}):\n{tail}")
        document: dict[str, Any] = json.loads(report.read_text())
    if not document.get("wire"):
        raise RuntimeError("the demo's report has no wire measurement")
    return document


def call_table(wire: dict[str, Any]) -> list[str]:
    """A markdown table: per stream, packets/s and kbps each way (received: from the sender),
    then the totals; the handshake below."""
    lines = [
        "| stream | received pkt/s | received kbps | sent pkt/s | sent kbps |",
        "|---|---:|---:|---:|---:|",
    ]
    streams = wire["streams"]
    for stream in [s for s in STREAMS if s in streams] + [s for s in streams if s not in STREAMS]:
        counts = streams[stream]
        if not any(counts[d]["packets"] or counts[d]["bytes"] for d in DIRECTIONS):
            continue
        cells = [f"{counts[d]['packets_per_s']:.1f} | {counts[d]['kbps']:.2f}" for d in DIRECTIONS]
        lines.append(f"| {stream} | " + " | ".join(cells) + " |")
    seconds = max(float(wire["seconds"]), 1e-9)
    socket = wire["socket"]
    cells = [
        f"{socket[d]['packets'] / seconds:.1f} | {socket[d]['bytes'] * 8 / seconds / 1000:.2f}" for d in DIRECTIONS
    ]
    lines.append("| **all** | " + " | ".join(cells) + " |")
    shake = wire["handshake"]
    lines += [
        "",
        f"{wire['line']}; other (STUN) {wire['other_kbps']:.1f} kbps; over {wire['seconds']:.1f} s",
        f"handshake, not counted above: {shake['seconds']:.2f} s, received {shake['received']['packets']} packets "
        f"({shake['received']['bytes']} B), sent {shake['sent']['packets']} ({shake['sent']['bytes']} B)",
        f"DTLS record overhead: {wire['dtls_record_overhead']} B; unparsed: {wire['unparsed']}",
    ]
    return lines


def write_call(document: dict[str, Any], out: Path, command: str) -> list[str]:
    """Write ``call.json`` and ``call.md`` into ``out``; returns the table's lines."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    (out / "call.json").write_text(json.dumps({"meta": meta, **document}, indent=1) + "\n")
    table = call_table(document["wire"])
    payload = (
        f"payload (the codec's own count): motion {document['motion_kbps']:.2f} kbps, "
        f"body {document.get('body_kbps', 0.0):.2f} kbps, {document['keyframes']} "
        f"keyframe(s) of {document['keyframe_bytes'] / 1000:.1f} KB"
    )
    timing = (
        f"latency capture -> rendered frame: median {document['latency_median_ms']:.0f} ms, p95 "
        f"{document['latency_p95_ms']:.0f} ms; {document['receiver_fps']:.1f} frames/s rendered"
    )
    if document.get("av_offset_ms") is not None:
        timing += f"; the picture trails the sound by {document['av_offset_ms']:.0f} ms"
    header = [f"# Bytes on the wire: {Path(document['clip']).name}, {document['seconds']:.1f} s", "",
              f"`{command}` ({meta['when']}, {meta['machine']})", "", payload, "", timing, ""]  # fmt: skip
    (out / "call.md").write_text("\n".join(header + table) + "\n")
    return table
