"""Hands per person: attach each hand found at the people's wrists to the person it belongs to.

Owns the attachment rule (`attach_hands`) and `HandsEstimator`, which adds hands to the people
any pose backend finds. Finding the hands is pose.hand_landmarks'; the Hand type and its
topology are pose.types'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.frames import Frame
from pose.estimator import PoseEstimator
from pose.hand_landmarks import HandFinder, forearm_px, px
from pose.types import (
    HAND_LANDMARK_INDEX,
    L_INDEX,
    L_PINKY,
    L_THUMB,
    L_WRIST,
    R_INDEX,
    R_PINKY,
    R_THUMB,
    R_WRIST,
    Hand,
    HandSide,
    Pose,
)

# A hand's wrist farther than a forearm from the person's wrist is somebody else's hand, or no
# hand at all: a hand sits at its wrist, and the pose's wrist is off by far less than that.
ATTACH_MAX_FOREARMS = 1.0
# The pose's hand points (pinky, index, thumb knuckles) take part in matching a hand only where
# the pose model saw them; BlazePose's guesses of hidden knuckles would pull the match away.
POSE_HAND_POINT_MIN_VISIBILITY = 0.5
# Two hands found whose landmarks lie within this fraction of a hand's size (wrist to middle
# knuckle) on average are the same hand found from two wrists (hands close together).
SAME_HAND_MAX_HAND_SIZES = 0.5

_WRIST, _PINKY_MCP, _INDEX_MCP, _THUMB_MCP = (
    HAND_LANDMARK_INDEX[name] for name in ("wrist", "pinky_mcp", "index_finger_mcp", "thumb_mcp")
)
_PAIRS: dict[HandSide, tuple[tuple[int, int], ...]] = {
    # (pose landmark, hand landmark): wrist, then the knuckles BlazePose places on the hand.
    HandSide.LEFT: ((L_WRIST, _WRIST), (L_PINKY, _PINKY_MCP), (L_INDEX, _INDEX_MCP), (L_THUMB, _THUMB_MCP)),
    HandSide.RIGHT: ((R_WRIST, _WRIST), (R_PINKY, _PINKY_MCP), (R_INDEX, _INDEX_MCP), (R_THUMB, _THUMB_MCP)),
}


def wrist_gap_px(hand: Hand, pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> float:
    """Pixels from the hand's wrist (its landmark 0) to the person's wrist on `side`."""
    hand_wrist = px(hand.landmarks_xyz[0, :2], resolution_wh)
    pose_wrist = px(pose.landmarks_xyzv[side.wrist, :2], resolution_wh)
    return float(np.linalg.norm(hand_wrist - pose_wrist))


def match_px(hand: Hand, pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> float:
    """How far the hand is from the person's hand on `side`: the mean pixel distance of the
    wrist and of each knuckle the pose model saw to the same points of the hand."""
    pairs = [
        (p, h)
        for p, h in _PAIRS[side]
        if h == 0 or pose.landmarks_xyzv[p, 3] >= POSE_HAND_POINT_MIN_VISIBILITY
    ]
    pose_pts = px(pose.landmarks_xyzv[[p for p, _ in pairs], :2], resolution_wh)
    hand_pts = px(hand.landmarks_xyz[[h for _, h in pairs], :2], resolution_wh)
    return float(np.linalg.norm(pose_pts - hand_pts, axis=1).mean())


def distinct_hands(hands: Sequence[Hand], resolution_wh: tuple[int, int]) -> list[Hand]:
    """`hands` without the second finding of a hand (found from both wrists when the hands are
    close together); the more confident finding stays."""
    kept: list[Hand] = []
    for hand in sorted(hands, key=lambda h: -h.score):
        pts = px(hand.landmarks_xyz[:, :2], resolution_wh)
        size = float(np.linalg.norm(pts[0] - pts[9]))
        if all(
            np.linalg.norm(pts - px(other.landmarks_xyz[:, :2], resolution_wh), axis=1).mean()
            > SAME_HAND_MAX_HAND_SIZES * size
            for other in kept
        ):
            kept.append(hand)
    return kept


@dataclass(frozen=True)
class _Candidate:
    relative_gap: float  # match distance in the person's forearms: smaller is better
    hand: int
    person: int
    side: HandSide


def attach_hands(
    poses: Sequence[Pose], hands: Sequence[Hand], resolution_wh: tuple[int, int]
) -> tuple[Pose, ...]:
    """`poses` with each hand attached to the person whose wrist it meets.

    Every (hand, person, side) whose wrists are within ATTACH_MAX_FOREARMS of the person's
    forearm is a candidate; the closest pairs (in that person's forearms, so a small person in
    the back does not lose to a large one in front) are taken first, each hand and each wrist
    at most once. The side is the wrist's, whatever the hand model called the hand. Hands that
    meet no wrist are dropped: a stored hand always belongs to a person.
    """
    found = distinct_hands(hands, resolution_wh)
    candidates = []
    for p, pose in enumerate(poses):
        reach = forearm_px(pose, resolution_wh)
        if reach <= 0:
            continue
        for h, hand in enumerate(found):
            for side in HandSide:
                if wrist_gap_px(hand, pose, side, resolution_wh) <= ATTACH_MAX_FOREARMS * reach:
                    gap = match_px(hand, pose, side, resolution_wh) / reach
                    candidates.append(_Candidate(gap, h, p, side))
    taken_hands: set[int] = set()
    attached: dict[tuple[int, HandSide], Hand] = {}
    for c in sorted(candidates, key=lambda c: c.relative_gap):
        if c.hand in taken_hands or (c.person, c.side) in attached:
            continue
        taken_hands.add(c.hand)
        attached[(c.person, c.side)] = found[c.hand]
    return tuple(
        pose.with_hands(attached.get((p, HandSide.LEFT)), attached.get((p, HandSide.RIGHT)))
        for p, pose in enumerate(poses)
    )


class HandsEstimator:
    """A pose backend with hands: the backend finds the people, then each person's wrists are
    searched for hands, which are attached to them (`attach_hands`). Hands keep no tracking
    state, so `reset()` is the backend's."""

    def __init__(self, poses: PoseEstimator, hands: HandFinder) -> None:
        self._poses = poses
        self._hands = hands
        self.name = f"{poses.name}+hands"

    def reset(self) -> None:
        self._poses.reset()

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        self._poses.forget_ahead(shape)

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        people = self._poses.estimate(frame)
        if not people:
            return people
        return attach_hands(people, self._hands.find(frame.rgb, people), frame.resolution_wh)

    def close(self) -> None:
        self._poses.close()
        self._hands.close()
