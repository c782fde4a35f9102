// The viewer page: receives the rendered head and the sound over WebRTC, sends the view.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const video = document.getElementById("video");
const state = document.getElementById("state");
const statsTable = document.getElementById("stats");
const sliders = ["yaw", "pitch", "roll"].map((name) => document.getElementById(name));
let channel = null;

const editControls = ["expression", "strength", "eyes", "gaze", "contact"].map((name) => document.getElementById(name));

// the face edits (codec.edits), sent with the view
function edits() {
  const [expression, strength, eyes, gaze, contact] = editControls;
  document.getElementById("strength-value").textContent = strength.value;
  return {
    expression: expression.value || null,
    strength: Number(strength.value),
    eyes: eyes.value || null,
    gaze_to_camera: gaze.checked,
    eye_contact: contact.checked,
  };
}

function sendView() {
  const view = {};
  for (const slider of sliders) {
    view[slider.id] = Number(slider.value);
    document.getElementById(slider.id + "-value").textContent = slider.value;
  }
  view.edits = edits();
  if (channel && channel.readyState === "open") channel.send(JSON.stringify(view));
}

for (const slider of sliders) slider.addEventListener("input", sendView);
for (const control of editControls) control.addEventListener(control.type === "checkbox" ? "change" : "input", sendView);

document.getElementById("reset").addEventListener("click", () => {
  for (const slider of sliders) slider.value = 0;
  sendView();
});

document.getElementById("sound").addEventListener("click", () => {
  video.muted = !video.muted;
  document.getElementById("sound").textContent = video.muted ? "sound on" : "sound off";
});

// mouse drag: horizontal = yaw, vertical = pitch
let drag = null;
video.addEventListener("pointerdown", (event) => {
  drag = { x: event.clientX, y: event.clientY, yaw: Number(sliders[0].value), pitch: Number(sliders[1].value) };
  video.setPointerCapture(event.pointerId);
});
video.addEventListener("pointermove", (event) => {
  if (!drag) return;
  sliders[0].value = Math.max(-45, Math.min(45, drag.yaw + (event.clientX - drag.x) / 4));
  sliders[1].value = Math.max(-45, Math.min(45, drag.pitch - (event.clientY - drag.y) / 4));
  sendView();
});
video.addEventListener("pointerup", () => { drag = null; });

function showStats(stats) {
  const rows = [
    ["motion", `${stats.motion_kbps ?? 0} kbps`],
    ["body", `${stats.body_kbps ?? 0} kbps`],
    ["keyframes", `${stats.keyframe_kbps ?? 0} kbps (${stats.keyframes ?? 0})`],
    ["open mouths", `${stats.mouth_kbps ?? 0} kbps (${stats.mouths ?? 0})`],
    ["references", `${stats.references ?? 0} held, ${((stats.reference_bytes ?? 0) / 1024).toFixed(1)} KB, `
      + `${stats.reference_switches ?? 0} switches`],
    ["on the wire", stats.wire == null ? "n/a"
      : `${stats.wire.total_kbps.toFixed(1)} kbps (audio ${stats.wire.audio_kbps.toFixed(1)}, `
        + `video ${stats.wire.video_kbps.toFixed(1)}), all headers`],
    ["fps", stats.fps ?? 0],
    ["render", `${stats.render_ms ?? 0} ms`],
    ["latency", stats.latency_ms == null ? "n/a (sender's clock unknown)" : `${stats.latency_ms} ms`],
    ["packet loss", `${((stats.packet_loss ?? 0) * 100).toFixed(1)} %`],
    ["bad packets", stats.bad_packets ?? 0],
  ];
  statsTable.innerHTML = rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
}

async function start() {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  channel = pc.createDataChannel("view");
  channel.onopen = sendView;
  channel.onmessage = (event) => showStats(JSON.parse(event.data));
  pc.ontrack = (event) => {
    if (!video.srcObject) video.srcObject = new MediaStream();
    video.srcObject.addTrack(event.track);
  };
  pc.onconnectionstatechange = () => { state.textContent = pc.connectionState; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    setTimeout(resolve, 2000);
  });
  const response = await fetch("viewer/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Call-Token": token },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!response.ok) {
    state.textContent = `refused: ${(await response.json()).error}`;
    return;
  }
  await pc.setRemoteDescription(await response.json());
}

start().catch((error) => { state.textContent = `error: ${error}`; });
