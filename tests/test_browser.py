"""The viewer page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``): the
page loads, the video plays, and moving the yaw slider or a face-edit control changes the
rendered picture.  A
screenshot is written to ``out/viewer-screenshot.png`` for a person to look at."""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT, shared_clip

pytestmark = [pytest.mark.shared, pytest.mark.timeout(240)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class _CallThread:
    """Receiver server + a sender on a clip, in an event loop of their own."""

    def __init__(self, clip: Path, seconds: float) -> None:
        self.clip, self.seconds = clip, seconds
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.sender_done = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self.server.url

    async def _start(self) -> None:
        from codec.decoder import Decoder
        from codec.render import ClassicalRenderer
        from receiver.server import ReceiverServer
        from sender.call import SenderCall
        from sender.sources import VideoFileSource

        renderer = ClassicalRenderer()
        self.server = ReceiverServer(lambda: Decoder(renderer), port=0, video_delay=0.0)
        await self.server.start()
        self.call = SenderCall(
            VideoFileSource(self.clip, max_seconds=self.seconds, audio=False), loop_model="classical"
        )
        await self.call.connect(f"http://127.0.0.1:{self.server.port}", self.server.token)

        async def run() -> None:
            await self.call.run(self.seconds)  # then the sender stays connected but still
            self.sender_done.set()

        self.loop.create_task(run())

    def stop(self) -> None:
        async def stop() -> None:
            await self.call.close()
            await self.server.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _picture(element) -> np.ndarray:  # type: ignore[no-untyped-def]
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"), dtype=np.float64)


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
def test_viewer_page_plays_and_turns_the_head() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    call = _CallThread(shared_clip("dpe_s.mp4"), seconds=3.0)
    url = call.start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1100,800"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get(url)
        video = driver.find_element("id", "video")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = driver.execute_script("const v = arguments[0]; return [v.readyState, v.currentTime];", video)
            if state[0] >= 2 and state[1] > 1.0:
                break
            time.sleep(0.2)
        assert state[0] >= 2 and state[1] > 1.0, f"the video did not play: readyState, currentTime = {state}"
        assert call.sender_done.wait(30)
        time.sleep(1.5)  # the sender is still now: the picture settles
        before = _picture(video)
        time.sleep(1.0)
        still = _picture(video)
        driver.execute_script(
            "const s = document.getElementById('yaw'); s.value = 30; s.dispatchEvent(new Event('input'));"
        )
        time.sleep(2.0)
        turned = _picture(video)
        noise, change = np.abs(still - before).mean(), np.abs(turned - still).mean()
        assert change > max(5 * noise, 2.0), f"yaw 30 changed the picture by {change:.2f}, noise {noise:.2f}"
        # a face edit (codec.edits) from the page's controls: surprised, eyes closed
        driver.execute_script(
            "for (const [id, value] of [['expression', 'surprise'], ['eyes', 'closed']]) {"
            "  const control = document.getElementById(id); control.value = value;"
            "  control.dispatchEvent(new Event('input')); }"
        )
        time.sleep(2.0)
        edited = _picture(video)
        edit_change = np.abs(edited - turned).mean()
        assert edit_change > max(3 * noise, 0.5), f"the edit changed the picture by {edit_change:.2f} ({noise:.2f})"
        out = ROOT / "out"
        out.mkdir(exist_ok=True)
        driver.save_screenshot(str(out / "viewer-screenshot.png"))
        stats = driver.find_element("id", "stats").text
        assert "motion" in stats and "kbps" in stats
    finally:
        driver.quit()
        call.stop()
