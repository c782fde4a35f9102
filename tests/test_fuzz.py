"""100 000 mutated or random packets: each decodes to a packet or raises PacketError."""

from __future__ import annotations

import random
from pathlib import Path

import msgpack

from codec.packets import KeyframePacket, MotionDecoder, MotionPacket, PacketError, decode_packet
from codec.packets.messages import ControlPacket

PACKETS = Path(__file__).parent / "data" / "packets"
N_PACKETS = 100_000


def _random_object(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(10 if depth < 3 else 6)
    if choice == 0:
        return rng.randint(-(2**63), 2**64 - 1)
    if choice == 1:
        return rng.choice([0, 1, 2, -1, 255, 256, 2**32, rng.random() * 1e6, float("nan"), float("inf")])
    if choice == 2:
        return rng.randbytes(rng.randrange(40))
    if choice == 3:
        return rng.choice(["", "keyframe_request", "jpeg", "png", "mediapipe478", "x" * rng.randrange(300)])
    if choice == 4:
        return rng.choice([None, True, False])
    if choice == 5:
        return msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(8)))
    if choice in (6, 7):
        return [_random_object(rng, depth + 1) for _ in range(rng.randrange(9))]
    keys = ["id", "ts", "codec", "image", "w", "h", "kp", "pose", "type", "kf", "reason", "quant", "x"]
    return {rng.choice(keys): _random_object(rng, depth + 1) for _ in range(rng.randrange(6))}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buffer:
            buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
        elif op == 1 and buffer:
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
        elif op == 2:
            buffer.insert(rng.randrange(len(buffer) + 1), rng.randrange(256))
        elif op == 3 and buffer:
            del buffer[rng.randrange(len(buffer))]
        elif op == 4:
            buffer = buffer[: rng.randrange(len(buffer) + 1)]
        else:
            cut = rng.randrange(len(buffer) + 1)
            buffer[cut:cut] = rng.randbytes(rng.randrange(1, 6))
    return bytes(buffer)


def test_fuzz_decoding() -> None:
    rng = random.Random(20261121)
    seeds = [p.read_bytes() for p in sorted(PACKETS.glob("valid_*.bin"))]
    keyframe = decode_packet((PACKETS / "valid_keyframe.bin").read_bytes())
    assert isinstance(keyframe, KeyframePacket)
    decoder = MotionDecoder()
    decoder.add_keyframe(keyframe)
    outcomes = {"packet": 0, "error": 0, "motion decoded": 0, "motion refused": 0}
    for i in range(N_PACKETS):
        kind = i % 10
        if kind < 7:
            data = _mutate(rng, rng.choice(seeds))
        elif kind < 8:
            data = msgpack.packb([2, rng.randrange(4), *(_random_object(rng) for _ in range(rng.randrange(8)))])
        elif kind < 9:  # a motion message's framing around random payload bytes
            payload = bytes([0x20 | rng.randrange(16)]) + rng.randbytes(rng.randrange(40))
            data = bytes([0xC4, len(payload)]) + payload
        else:
            data = rng.randbytes(rng.randrange(64))
        try:
            packet = decode_packet(data)
        except PacketError:
            outcomes["error"] += 1
            continue
        outcomes["packet"] += 1
        assert isinstance(packet, KeyframePacket | MotionPacket | ControlPacket)
        if isinstance(packet, MotionPacket):
            try:
                decoded = decoder.decode(packet)
                outcomes["motion decoded" if decoded is not None else "motion refused"] += 1
            except PacketError:
                outcomes["motion refused"] += 1
    print(outcomes)
    assert sum(outcomes[k] for k in ("packet", "error")) == N_PACKETS
    # the mutations reach deep into the decoder: many stay valid, many are refused
    assert outcomes["packet"] > 5_000 and outcomes["error"] > 50_000, outcomes
    assert outcomes["motion decoded"] > 1_000 and outcomes["motion refused"] > 100, outcomes
