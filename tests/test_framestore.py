"""The frame store on a real Redis: frames by reference, a bounded window, idempotent release."""

import threading
import time

import numpy as np
import pytest
import redis

from pipeline import keys, payload
from pipeline.errors import FramesMissingError
from pipeline.frames import Frame, PlanarFrame
from pipeline.framestore import FrameStore
from pipeline.payload import FrameEncoding
from posepipe.services import LARGE_ARGUMENT_BYTES, FramePayloadPacker, connect_redis


@pytest.fixture
def store(redis_url: str) -> FrameStore:
    return FrameStore(redis.Redis.from_url(redis_url), ttl_s=60, encoding=FrameEncoding.RAW)


def frame(seq: int) -> Frame:
    return Frame(seq=seq, pts_s=seq / 10, rgb=np.full((24, 32, 3), seq, dtype=np.uint8))


def test_put_get_release(store: FrameStore) -> None:
    for s in range(4):
        store.put(1, "run", frame(s))
    assert store.queued(1, "run") == 4
    got = store.get(1, "run", range(1, 3))
    assert [f.seq for f in got] == [1, 2] and int(got[1].rgb[0, 0, 0]) == 2
    assert store.redis.ttl(keys.frame(1, "run", 0)) > 0
    assert store.release(1, "run", range(2)) == 2
    assert store.release(1, "run", range(2)) == 0  # a retried job releasing again changes nothing
    assert store.queued(1, "run") == 2


def test_missing_frames_are_reported_not_skipped(store: FrameStore) -> None:
    store.put(1, "run", frame(0))
    with pytest.raises(FramesMissingError, match="1 frame"):
        store.get(1, "run", range(2))


def test_stream_reads_ahead_in_order(store: FrameStore) -> None:
    for s in range(11):
        store.put(1, "run", frame(s))
    frames = store.stream(1, "run", range(11), batch=4)
    assert next(frames).seq == 0
    time.sleep(0.2)
    # The second batch was fetched while the first was being used: deleting one of its
    # frames now changes nothing.
    store.redis.delete(keys.frame(1, "run", 5))
    rest = list(frames)
    assert [f.seq for f in rest] == list(range(1, 11))
    assert [int(f.rgb[0, 0, 0]) for f in rest] == list(range(1, 11))


def test_stream_fails_before_the_first_frame_when_one_is_gone(store: FrameStore) -> None:
    for s in (0, 1, 2, 4, 5):
        store.put(1, "run", frame(s))
    with pytest.raises(FramesMissingError, match=r"1 frame\(s\) .*\(seq 3\)"):
        next(store.stream(1, "run", range(6), batch=2))


def test_stream_fails_at_the_batch_whose_frame_expired(store: FrameStore) -> None:
    for s in range(6):
        store.put(1, "run", frame(s))
    frames = store.stream(1, "run", range(6), batch=2)
    assert next(frames).seq == 0  # batch [0, 2) read, [2, 4) being read; [4, 6) not yet
    store.redis.delete(keys.frame(1, "run", 5))
    assert [next(frames).seq for _ in range(3)] == [1, 2, 3]
    with pytest.raises(FramesMissingError, match=r"\(seq 5\)"):
        next(frames)


def test_writer_blocks_while_the_window_is_full(store: FrameStore) -> None:
    for s in range(3):
        store.put(1, "run", frame(s))
    released = threading.Event()

    def consumer() -> None:
        time.sleep(0.3)
        store.release(1, "run", range(1))
        released.set()

    threading.Thread(target=consumer, daemon=True).start()
    waited = store.wait_for_room(1, "run", limit=3)
    assert released.is_set() and waited >= 0.25
    assert store.queued(1, "run") == 2


def test_purge_drops_only_that_run(store: FrameStore) -> None:
    for s in range(3):
        store.put(1, "a", frame(s))
        store.put(1, "b", frame(s))
    assert store.purge(1, "a") == 3
    assert store.queued(1, "a") == 0 and store.queued(1, "b") == 3


def test_a_frame_put_again_is_counted_once(store: FrameStore) -> None:
    # A resumed ingest puts frames that are already there; the window must not drift upward.
    store.put(1, "run", frame(0))
    store.put(1, "run", frame(0))
    store.put(1, "run", frame(1))
    assert store.queued(1, "run") == 2
    assert store.release(1, "run", range(2)) == 2
    assert store.queued(1, "run") == 0


def test_a_720p_frame_goes_through_the_service_client_unchanged(redis_url: str) -> None:
    store = FrameStore(connect_redis(redis_url), ttl_s=60, encoding=FrameEncoding.RAW)
    rgb = np.random.default_rng(7).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    store.put(3, "run", Frame(seq=5, pts_s=0.5, rgb=rgb))
    (got,) = store.get(3, "run", range(5, 6))
    assert got.seq == 5 and got.pts_s == 0.5 and np.array_equal(got.rgb, rgb)


def test_a_planar_720p_frame_is_streamed_back_as_the_rgb_it_converts_to(redis_url: str) -> None:
    store = FrameStore(connect_redis(redis_url), ttl_s=60, encoding=FrameEncoding.YUV420)
    assert store.planar
    yuv = np.random.default_rng(7).integers(16, 236, (1080, 1280), dtype=np.uint8)
    sent = [PlanarFrame(seq=s, pts_s=s / 10, yuv=yuv, colorspace=1, rotation_deg=90) for s in range(10)]
    sizes = [store.put(4, "run", f) for f in sent]
    assert sizes[0] < 1280 * 720 * 3 // 2 + 64  # half the bytes of RGB, header aside
    got = list(store.stream(4, "run", range(10), batch=4))
    assert [f.seq for f in got] == list(range(10))
    assert got[0].rgb.shape == (1280, 720, 3)  # turned upright after conversion
    assert all(np.array_equal(g.rgb, f.to_frame().rgb) for g, f in zip(got, sent, strict=True))


def test_the_packer_sends_a_frame_payload_without_copying_it() -> None:
    packer = FramePayloadPacker()
    payload = bytes(LARGE_ARGUMENT_BYTES + 1)
    chunks = packer.pack("SET", "frame-key", payload, "EX", 60)
    assert any(chunk is payload for chunk in chunks)
    head = b"*5\r\n$3\r\nSET\r\n$9\r\nframe-key\r\n$%d\r\n" % len(payload)
    assert b"".join(chunks) == head + payload + b"\r\n$2\r\nEX\r\n$2\r\n60\r\n"
    small = packer.pack("SET", "k", b"v")
    assert b"".join(small) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"


def test_payloads_are_the_frames_undecoded(store: FrameStore) -> None:
    for s in range(3):
        store.put(1, "run", frame(s))
    blobs = store.payloads(1, "run", range(1, 3))
    assert [payload.decode(b).seq for b in blobs] == [1, 2]
    assert [payload.pts_s(b) for b in blobs] == [0.1, 0.2]
    with pytest.raises(FramesMissingError):
        store.payloads(1, "run", range(2, 4))
