"""``python -m bench soak``: a looped loopback call for N minutes, with hostile bursts.

The product runs as a user runs it: ``python -m receiver demo --video CLIP --loop`` (the receiver
and, as a process of its own, the sender).  Every :data:`SAMPLE_EVERY` seconds the soak reads
both processes' resident memory from ``/proc`` and the receiver's ``/stats`` (timing the reply):
frames rendered, latency (median and p95 of the recent packets), the longest gap between two
rendered frames, bad packets.  Every ``burst_every`` seconds it attacks the receiver's HTTP side:
bad and oversized offers, stalled bodies, wrong and non-ASCII tokens.  Outputs ``soak.json``,
``soak.md`` and ``soak.png`` (memory and latency over time).  Linux only (``/proc``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["SoakReport", "run_soak", "write_soak"]

#: seconds between samples
SAMPLE_EVERY = 2.0
#: the receiver's memory growth is measured against the first sample after this many seconds
WARM_UP = 60.0


@dataclass
class SoakReport:
    clip: str
    minutes: float
    samples: list[dict[str, float | None]] = field(default_factory=list)
    bursts: int = 0
    hostile_requests: int = 0
    summary: dict[str, float | None] = field(default_factory=dict)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, float, bytes]:
    """(HTTP status, milliseconds, body); status 0 when there was no answer within 5 s."""
    begin = time.monotonic()
    content = b""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers or {}), timeout=5) as reply:
            status, content = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, TimeoutError):
        status = 0
    return status, (time.monotonic() - begin) * 1000, content


def _burst(port: int, token: str) -> int:
    """One round of hostile HTTP requests; returns how many were sent."""
    base = f"http://127.0.0.1:{port}"
    sent = 0
    for body in (b'{"sdp": 5, "type": "offer"}', b"garbage", b'{"sdp": "' + b"x" * 100_000 + b'"}'):
        for path in ("/call/offer", "/viewer/offer"):
            _request(base + path, body, {"X-Call-Token": token, "Content-Type": "application/json"})
            sent += 1
    for given in ("%C3%A9t%C3%A9", "wrong", ""):
        _request(f"{base}/stats?token={given}")
        sent += 1
    stalled = []
    for _ in range(3):  # bodies that never finish: the server gives up after its read timeout
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(f"POST /viewer/offer HTTP/1.1\r\nHost: x\r\nX-Call-Token: {token}\r\n"
                           f"Content-Length: 5000\r\n\r\n{{".encode())  # fmt: skip
        stalled.append(connection)
        sent += 1
    for connection in stalled:
        connection.close()
    return sent


def run_soak(clip: Path, minutes: float, model: str = "mesh", burst_every: float = 60.0) -> SoakReport:
    """Run the soak; see the module docstring.

    Raises:
        RuntimeError: the receiver did not start (its output is in the message).
    """
    from tqdm import tqdm

    port = _free_port()
    command = [sys.executable, "-m", "receiver", "demo", "--video", str(clip), "--loop", "--port", str(port),
               "--model", model]  # fmt: skip
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert demo.stdout is not None
    first = demo.stdout.readline()
    if "token=" not in first:
        demo.kill()
        raise RuntimeError(f"the receiver did not start: {first.strip() or 'no output'}")
    token = first.strip().rsplit("token=", 1)[1]
    report = SoakReport(clip.name, minutes)
    start = time.monotonic()
    next_burst = start + burst_every
    try:
        with tqdm(total=round(minutes * 60), unit="s", desc="soak", file=sys.stderr) as bar:
            while (now := time.monotonic()) - start < minutes * 60:
                if demo.poll() is not None:
                    raise RuntimeError(f"the receiver exited with code {demo.returncode} after {now - start:.0f} s")
                status, stats_ms, body = _request(f"http://127.0.0.1:{port}/stats?token={token}")
                stats: dict[str, float | None] = json.loads(body) if status == 200 else {}
                senders = _children(demo.pid)
                report.samples.append({
                    "t": round(now - start, 2), "stats_ms": round(stats_ms, 1), "stats_status": status,
                    "rss_receiver_mb": _rss_mb(demo.pid),
                    "rss_sender_mb": _rss_mb(senders[0]) if senders else None,
                    **{k: stats.get(k) for k in ("rendered", "fps", "latency_ms", "latency_p95_ms", "max_gap_ms",
                                                 "bad_packets", "motion_packets", "dropped_stale", "references",
                                                 "reference_bytes", "keyframes")},
                })  # fmt: skip
                if now >= next_burst:
                    report.hostile_requests += _burst(port, token)
                    report.bursts += 1
                    next_burst += burst_every
                bar.update(round(time.monotonic() - start) - bar.n)
                time.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - now)))
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(15)
        except subprocess.TimeoutExpired:
            demo.kill()
    report.summary = _summary(report.samples)
    return report


def _summary(samples: list[dict[str, float | None]]) -> dict[str, float | None]:
    import numpy as np

    def values(key: str, after: float = 0.0, before: float = float("inf")) -> list[float]:
        return [float(s[key]) for s in samples if s.get(key) is not None and after <= float(s["t"]) < before]  # type: ignore[arg-type]

    rss = values("rss_receiver_mb", WARM_UP)
    sender = values("rss_sender_mb", WARM_UP)
    references = values("references")
    first_minute_p95 = values("latency_p95_ms", 0.0, WARM_UP)
    later_p95 = values("latency_p95_ms", WARM_UP)
    return {
        "rss_receiver_first_mb": rss[0] if rss else None,
        "rss_receiver_last_mb": rss[-1] if rss else None,
        "rss_receiver_peak_mb": max(values("rss_receiver_mb"), default=None),
        "rss_growth_after_first_minute_percent": (rss[-1] - rss[0]) / rss[0] * 100 if len(rss) > 1 else None,
        "rss_sender_peak_mb": max(values("rss_sender_mb"), default=None),
        "rss_sender_first_mb": sender[0] if sender else None,
        "rss_sender_last_mb": sender[-1] if sender else None,
        "rss_sender_growth_after_first_minute_percent": (
            (sender[-1] - sender[0]) / sender[0] * 100 if len(sender) > 1 else None
        ),
        "references_max": max(references, default=None),
        "reference_bytes_max": max(values("reference_bytes"), default=None),
        "max_gap_ms": max(values("max_gap_ms", 5.0), default=None),
        "latency_p95_first_minute_ms": float(np.median(first_minute_p95)) if first_minute_p95 else None,
        "latency_p95_ms": float(np.median(later_p95)) if later_p95 else None,
        "stats_max_ms": max(values("stats_ms"), default=None),
        "rendered": values("rendered")[-1] if values("rendered") else None,
        "bad_packets": values("bad_packets")[-1] if values("bad_packets") else None,
    }


def write_soak(report: SoakReport, out: Path) -> str:
    """``soak.json``, ``soak.md`` and ``soak.png`` into ``out``; returns the Markdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(asdict(report), indent=1))
    s = report.summary

    def number(key: str, unit: str = "", digits: int = 0) -> str:
        value = s.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    text = "\n".join([
        "# Soak: a looped loopback call with hostile bursts",
        "",
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; clip {report.clip}, {report.minutes:g} min, "
        f"{report.bursts} hostile bursts ({report.hostile_requests} requests).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| receiver memory after the first minute, first / last / peak | {number('rss_receiver_first_mb', ' MB')} / "
        f"{number('rss_receiver_last_mb', ' MB')} / {number('rss_receiver_peak_mb', ' MB')} |",
        "| receiver memory growth after the first minute | "
        f"{number('rss_growth_after_first_minute_percent', ' %', 1)} |",
        f"| sender memory after the first minute, first / last / peak | {number('rss_sender_first_mb', ' MB')} / "
        f"{number('rss_sender_last_mb', ' MB')} / {number('rss_sender_peak_mb', ' MB')} |",
        "| sender memory growth after the first minute (it runs the closed loop) | "
        f"{number('rss_sender_growth_after_first_minute_percent', ' %', 1)} |",
        f"| references held by the receiver, most / their bytes, most | {number('references_max')} / "
        f"{number('reference_bytes_max', ' B')} |",
        f"| longest gap between rendered frames | {number('max_gap_ms', ' ms')} |",
        f"| latency p95, first minute / after | {number('latency_p95_first_minute_ms', ' ms')} / "
        f"{number('latency_p95_ms', ' ms')} |",
        f"| slowest /stats answer | {number('stats_max_ms', ' ms')} |",
        f"| frames rendered, bad packets | {number('rendered')}, {number('bad_packets')} |",
        "",
    ])  # fmt: skip
    (out / "soak.md").write_text(text)
    t = [float(x["t"]) / 60 for x in report.samples]  # type: ignore[arg-type]
    fig, (memory, latency) = plt.subplots(2, 1, figsize=(9, 6), dpi=110, sharex=True)
    for key, label in (("rss_receiver_mb", "receiver"), ("rss_sender_mb", "sender")):
        memory.plot(t, [x[key] for x in report.samples], label=label)
    memory.set_ylabel("resident memory (MB)")
    memory.legend(loc="lower right")
    for key, label in (("latency_ms", "latency median"), ("latency_p95_ms", "latency p95"),
                       ("max_gap_ms", "longest gap between frames")):  # fmt: skip
        latency.plot(t, [x[key] for x in report.samples], label=label)
    latency.set_ylabel("ms")
    latency.set_xlabel("minutes")
    latency.legend(loc="upper right")
    for axis in (memory, latency):
        axis.grid(alpha=0.3)
    memory.set_title(f"Soak: {report.clip}, looped loopback call, hostile bursts every minute")
    fig.tight_layout()
    fig.savefig(out / "soak.png")
    plt.close(fig)
    print(text)
    return text
