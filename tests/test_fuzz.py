"""Fuzzing the paths untrusted bytes take: the container probe and frame decode, and frame payloads.

Whatever the bytes, opening and decoding either yields frames or raises one of our typed
ingest errors; it never raises anything else and never hangs. CI runs a short session;
`FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/test_fuzz.py` runs a long one (see docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import payload
from pipeline.errors import IngestError
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from tests import media_gen

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=False,
)


@pytest.fixture(scope="module")
def seed_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = media_gen.write_video(tmp_path_factory.mktemp("seed") / "seed.mp4", width=96, height=64, frames=12)
    return path.read_bytes()


def decode_all(path: Path) -> int:
    with VideoFile(path) as video:
        return sum(1 for _ in video.sampled_frames(FrameSampler(0).take, max_side=64))


mutation = st.lists(
    st.tuples(st.floats(0, 1, allow_nan=False), st.binary(min_size=1, max_size=64)), min_size=1, max_size=8
)


@FUZZ
@given(edits=mutation, cut=st.floats(0.05, 1.0, allow_nan=False))
def test_mutated_containers_decode_or_fail_with_a_typed_error(
    seed_video: bytes, tmp_path: Path, edits, cut
) -> None:
    data = bytearray(seed_video[: max(1, int(len(seed_video) * cut))])
    for where, garbage in edits:
        at = int(where * max(0, len(data) - 1))
        data[at : at + len(garbage)] = garbage
    path = tmp_path / "fuzzed.mp4"
    path.write_bytes(bytes(data))
    try:
        frames = decode_all(path)
    except IngestError as exc:
        assert str(exc)  # a reason a user can read
    else:
        assert frames >= 1


@FUZZ
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_are_never_more_than_a_typed_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(data)
    try:
        frames = decode_all(path)
    except IngestError as exc:
        assert str(exc)
    else:
        assert frames >= 1


@FUZZ
@given(data=st.binary(max_size=2048))
def test_frame_payload_decoding_rejects_garbage_cleanly(data: bytes) -> None:
    try:
        frame = payload.decode(data)
    except payload.PayloadError:
        return
    assert frame.rgb.ndim == 3
