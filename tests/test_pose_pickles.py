"""Pickles naming the pose types' former module (workers.poses) still load (pose.pickles)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pose import pickles
from pose.types import N_LANDMARKS, FramePoses, Pose


def _frame() -> FramePoses:
    rng = np.random.default_rng(3)
    pose = Pose(rng.random((N_LANDMARKS, 4), dtype=np.float32), None, 0.75)
    return FramePoses.of(7, 0.7, (640, 480), [pose])


def test_a_pickle_from_before_the_move_loads_as_the_same_poses() -> None:
    # Protocol 0 writes each class as "c<module>\n<name>\n": the module name can be swapped in place.
    blob = pickle.dumps(_frame(), protocol=0)
    old = blob.replace(b"cpose.types\n", b"cworkers.poses\n")
    assert old != blob
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    loaded = pickles.loads(old)
    assert isinstance(loaded, FramePoses) and isinstance(loaded.poses[0], Pose)
    assert (loaded.seq, loaded.pts_s, loaded.resolution_wh) == (7, 0.7, (640, 480))
    np.testing.assert_array_equal(loaded.poses[0].landmarks_xyzv, _frame().poses[0].landmarks_xyzv)


def test_a_current_pickle_loads_unchanged() -> None:
    loaded = pickles.loads(pickle.dumps(_frame(), protocol=pickle.HIGHEST_PROTOCOL))
    assert loaded.poses[0].score == 0.75
