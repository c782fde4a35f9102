"""The receiving peer: an HTTP server for signaling and the viewer page, and the calls.

- ``POST /call/offer``: the sender's SDP offer (header ``X-Call-Token``) -> the answer; one
  sender at a time.  A wrong token gets 403.
- ``GET /?token=...``: the viewer page (``static/viewer.html``, no build step).
- ``POST /viewer/offer``: the page's offer -> the answer; the page receives the rendered video
  and the sender's sound, and sends the viewer's rotation on a data channel, which also
  carries statistics back.
- ``GET /stats``: the call's statistics as JSON (``wire``: the bytes it puts on the network, see
  :mod:`receiver.wire`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from codec.decoder import Decoder
from codec.edits import FaceEdits

from . import signaling
from .carrier import MotionReceiver
from .limits import enforce_sctp_message_limit
from .session import ReceiverSession
from .signaling import (
    MAX_VIEWERS,
    PENDING_GRACE,
    OfferError,
    answer_offer,
    close_unless_connected,
    read_offer,
    token_matches,
)
from .thin_link import prefer_short_srtp_tag, space_rtcp_reports
from .tracks import RenderedVideoTrack
from .wire import WireMeter

__all__ = ["ReceiverServer"]

log = logging.getLogger(__name__)


class ReceiverServer:
    """Serve one call and any number of viewer pages.

    Args:
        make_decoder: builds the decoder of a new call (e.g. ``lambda: Decoder(renderer)`` to
            share one loaded model between calls).
        host, port: where to listen (port 0: any free port).
        token: the call's secret (default: random); the URL printed for the page includes it.
        ice_servers: STUN/TURN URLs (none by default).
        fps: frame rate of the video sent to viewers.
        clock: maps a sender timestamp (ms) to this process's monotonic time (or None while
            unknown), for latency statistics when both peers share a clock (loopback demo);
            None otherwise.
        video_delay: seconds the picture waits before it is shown, so that it stays in step
            with the sound.  None by default: the motion rides on the audio packets, so the
            picture already trails the sound (by ~25 ms in the loopback demo).
    """

    def __init__(
        self,
        make_decoder: Callable[[], Decoder],
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        ice_servers: list[str] | None = None,
        fps: float = 25.0,
        clock: Callable[[int], float | None] | None = None,
        video_delay: float = 0.0,
    ) -> None:
        self.make_decoder = make_decoder
        self.video_delay = video_delay
        self.host, self.port = host, port
        self.token = token or secrets.token_urlsafe(16)
        self.ice_servers = ice_servers or []
        self.fps = fps
        self.clock = clock
        self.session: ReceiverSession | None = None
        self.call_pc: Any | None = None
        self.wire: WireMeter | None = None  #: the bytes the current (or last) call put on the network
        self.carrier: MotionReceiver | None = None  #: the current (or last) call's motion on the audio packets
        self.audio_track: Any | None = None
        self.relay: Any | None = None
        self.viewer_pcs: set[Any] = set()
        self.video_tracks: set[RenderedVideoTrack] = set()
        self.view_channels: set[Any] = set()
        self.call_ended = asyncio.Event()
        self.call_started = asyncio.Event()
        self.frame_listeners: list[Callable[[Any, int], None]] = []
        self.refused = 0
        self._offered_at = 0.0
        self._runner: Any | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/?token={self.token}"

    async def start(self) -> str:
        """Listen; returns the viewer page's URL."""
        space_rtcp_reports()  # RFC 3550's 5 s, not aiortc's 1 s
        from aiohttp import web

        enforce_sctp_message_limit()
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/viewer.js", self._script)
        app.router.add_post("/call/offer", self._call_offer)
        app.router.add_post("/viewer/offer", self._viewer_offer)
        app.router.add_get("/stats", self._stats)
        # keepalive_timeout also bounds a request's header: a client trickling it is cut off
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=signaling.IDLE_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        """Close every connection and the server; no task is left behind."""
        if self.session is not None:
            await self.session.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        pcs = [pc for pc in [self.call_pc, *self.viewer_pcs] if pc is not None]
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        self.viewer_pcs.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _authorized(self, request: Any) -> bool:
        return token_matches(request.headers.get("X-Call-Token") or request.query.get("token", ""), self.token)

    def _refuse(self, request: Any) -> Any:
        from aiohttp import web

        self.refused += 1
        log.warning("refused a request to %s from %s: wrong token", request.path, request.remote)
        return web.json_response({"error": "wrong call token"}, status=403)

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        if not self._authorized(request):
            return web.Response(status=403, text="wrong or missing call token: open the URL the receiver printed")
        html = resources.files("receiver").joinpath("static", "viewer.html").read_text()
        return web.Response(text=html, content_type="text/html")

    async def _script(self, request: Any) -> Any:
        from aiohttp import web

        script = resources.files("receiver").joinpath("static", "viewer.js").read_text()
        return web.Response(text=script, content_type="application/javascript")

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web

        if not self._authorized(request):
            return self._refuse(request)
        return web.json_response(self.stats())

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = {"call": self.session is not None, "viewers": len(self.viewer_pcs)}
        if self.session is not None:
            data.update(self.session.stats.as_dict())
            data["dropped_queued"] = self.session.dropped_queued
            data["oversized"] = self.session.oversized
        if self.wire is not None:
            data["wire"] = self.wire.snapshot()
        if self.carrier is not None:
            data["carrier"] = self.carrier.stats.as_dict()
        return data

    # --- the sender's connection ---------------------------------------------------------------

    def _new_pc(self) -> Any:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        return RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(url) for url in self.ice_servers]))

    async def _call_offer(self, request: Any) -> Any:
        from aiohttp import web

        if not self._authorized(request):
            return self._refuse(request)
        current = self.call_pc
        if current is not None and current.connectionState not in ("closed", "failed"):
            now = time.monotonic()
            if current.connectionState == "connected":
                abandoned = self.session is None or now - self.session.last_message_at > PENDING_GRACE
            else:
                abandoned = now - self._offered_at > PENDING_GRACE
            if not abandoned:
                return web.json_response({"error": "a call is already in progress"}, status=409)
            await current.close()  # an offer that never connected, or a sender that vanished: replaced
        pc = self._new_pc()
        self.call_pc = pc  # the slot is taken while the offer is answered, and freed if that fails
        self.wire = WireMeter(pc)  # attaches to the sockets once ICE gathering is complete
        self._offered_at = time.monotonic()
        session = None
        try:
            sdp, kind = await read_offer(request, need="m=application")
            session = self._start_call(pc)
            answer = await answer_offer(pc, sdp, kind, before_answer=prefer_short_srtp_tag)
        except OfferError as exc:
            await pc.close()
            if session is not None:
                await session.close()
            if self.call_pc is pc:
                self.call_pc = None
            return web.json_response({"error": exc.message}, status=exc.status)
        self._spawn(self._keyframe_watch(session))
        self._spawn(close_unless_connected(pc))
        return web.json_response(answer)

    def _start_call(self, pc: Any) -> ReceiverSession:
        """The call's session, wired to ``pc``'s channels, tracks and state."""
        from aiortc.contrib.media import MediaRelay

        from .audio import conceal_audio_loss

        self.call_ended.clear()
        self.relay = relay = MediaRelay()
        session = ReceiverSession(self.make_decoder(), lambda data: None, self._on_frame, self.clock,
                                  on_bye=lambda: self._spawn(self._end_call(pc)))  # fmt: skip
        self.session = session
        # motion on the audio packets, fed to the session as if from the motion channel (receiver/carrier.py);
        # made before the answer, which then accepts the header extension
        self.carrier = carrier = MotionReceiver(session.on_motion_message, render_seconds=session.render_seconds)
        channels: dict[str, Any] = {}

        def send_control(data: bytes) -> None:
            channel = channels.get("control")
            if channel is not None and channel.readyState == "open":
                channel.send(data)

        session.send_control = send_control

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            channels[channel.label] = channel
            if channel.label == "motion":
                channel.on("message", session.on_motion_message)
            elif channel.label == "control":
                channel.on("message", session.on_control_message)
                channel.on("close", lambda: self._spawn(self._end_call(pc)))  # no call without it
                session.send_requests()

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio":
                conceal_audio_loss(pc, track)  # FEC and PLC for lost sound (receiver/audio.py)
                carrier.attach(pc, track)
                self.audio_track = track
                # always read: an incoming track buffers without bound while no viewer listens
                self._spawn(_drain(relay.subscribe(track, buffered=False)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                self.call_started.set()
            if pc.connectionState in ("failed", "closed"):
                await session.close()
                if self.call_pc is pc:  # not a replaced offer's late close
                    self.call_ended.set()

        session.start()
        return session

    async def _end_call(self, pc: Any) -> None:
        """End the call on ``pc`` (not a later call that took the slot since)."""
        # shielded: aiortc's close() cancelled halfway never completes, and every later close()
        # of that connection (``stop``'s) would wait for it forever
        await asyncio.shield(pc.close())
        if self.call_pc is pc:
            self.call_ended.set()

    async def _keyframe_watch(self, session: ReceiverSession) -> None:
        """Ask for a keyframe every so often while there is none."""
        while self.session is session and not self.call_ended.is_set():
            await asyncio.sleep(0.3)
            session.send_requests()

    def _on_frame(self, image: Any, timestamp_ms: int) -> None:
        for track in self.video_tracks:
            track.update(image, timestamp_ms)
        for listener in self.frame_listeners:
            listener(image, timestamp_ms)
        self._push_stats()

    _last_stats = 0.0

    def _push_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < 0.5:
            return
        self._last_stats = now
        message = json.dumps(self.stats())
        for channel in list(self.view_channels):
            if channel.readyState == "open":
                channel.send(message)

    # --- viewer pages --------------------------------------------------------------------------

    async def _viewer_offer(self, request: Any) -> Any:
        from aiohttp import web

        if not self._authorized(request):
            return self._refuse(request)
        if len(self.viewer_pcs) >= MAX_VIEWERS:
            return web.json_response({"error": f"{MAX_VIEWERS} viewers are watching already"}, status=503)
        try:
            sdp, kind = await read_offer(request)
        except OfferError as exc:
            return web.json_response({"error": exc.message}, status=exc.status)
        pc = self._new_pc()
        track = RenderedVideoTrack(self.fps, delay=self.video_delay)
        if self.session is not None and self.session.image is not None:
            track.update(self.session.image)
        pc.addTrack(track)
        if self.audio_track is not None and self.relay is not None:
            pc.addTrack(self.relay.subscribe(self.audio_track))

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            self.view_channels.add(channel)

            @channel.on("message")
            def on_message(message: bytes | str) -> None:
                self._on_view_message(message)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.viewer_pcs.discard(pc)
                self.video_tracks.discard(track)
                await pc.close()

        try:
            answer = await answer_offer(pc, sdp, kind)
        except OfferError as exc:
            return web.json_response({"error": exc.message}, status=exc.status)
        self.viewer_pcs.add(pc)  # counted only once answered; gone again when it closes
        self.video_tracks.add(track)
        self._spawn(close_unless_connected(pc))
        return web.json_response(answer)

    def _on_view_message(self, message: bytes | str) -> None:
        """``{"yaw": .., "pitch": .., "roll": .., "edits": {..}}``: degrees, clamped to +-45, and
        optionally the face edits (:meth:`codec.edits.FaceEdits.from_dict`)."""
        try:
            view = json.loads(message)
            yaw, pitch, roll = (max(-45.0, min(45.0, float(view.get(k, 0.0)))) for k in ("yaw", "pitch", "roll"))
            edits = FaceEdits.from_dict(view["edits"]) if "edits" in view else None
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("ignored a bad view message from a viewer page: %s", exc)
            return
        if self.session is not None:
            self.session.decoder.view(yaw, pitch, roll)
            if edits is not None:
                self.session.decoder.edit(edits)
            self.session.rerender()


async def _drain(track: Any) -> None:
    """Read and drop a track's frames until it ends."""
    from aiortc.mediastreams import MediaStreamError

    try:
        while True:
            await track.recv()
    except MediaStreamError:
        return
