"""Exports for the query side: pose rows (with each person's hands when stored) and events as CSV or
JSON, streamed to a text handle."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from analytics.angles import ANGLE_COLUMNS, JointAngles
from pose.types import HAND_LANDMARK_NAMES, LANDMARK_NAMES, N_HAND_LANDMARKS, Hand, LandmarkSelection
from posepipe.views import SCHEMA_VERSION, EventView
from storage.poses import StoredPose

LANDMARK_FIELDS = ("x", "y", "z", "visibility")
HAND_FIELDS = ("x", "y", "z")


def pose_csv_header(selection: LandmarkSelection) -> list[str]:
    """Body landmarks, then each selected hand (its score, then its 21 points, named
    `left_hand_thumb_tip_x`...), then joint angles."""
    header = ["video_id", "seq", "t_s", "person", "track_id", "score"]
    for i in selection.body:
        header.extend(f"{LANDMARK_NAMES[i]}_{field}" for field in LANDMARK_FIELDS)
    for side in selection.hands:
        header.append(f"{side.value}_score")
        for name in HAND_LANDMARK_NAMES:
            header.extend(f"{side.value}_{name}_{field}" for field in HAND_FIELDS)
    return header + list(ANGLE_COLUMNS)


def _hand_csv(hand: Hand | None) -> list[str]:
    # A hand not found is empty cells, as a joint angle that could not be measured.
    if hand is None:
        return [""] * (1 + N_HAND_LANDMARKS * len(HAND_FIELDS))
    return [f"{hand.score:.4f}", *(f"{v:.5f}" for v in hand.landmarks_xyz.reshape(-1))]


def _hand_json(hand: Hand | None) -> dict[str, Any] | None:
    if hand is None:
        return None
    return {
        "score": round(hand.score, 4),
        "landmarks": [[round(float(v), 5) for v in point] for point in hand.landmarks_xyz],
    }


def _angles(row: StoredPose, resolution_wh: tuple[int, int]) -> JointAngles:
    # From the raw stored landmarks (not smoothed): the export shows what was measured.
    return JointAngles.from_pose(row.pose.landmarks_xyzv, resolution_wh, row.pose.world_xyz_m)


def write_poses_csv(
    out: TextIO,
    video_id: int,
    rows: Iterable[StoredPose],
    selection: LandmarkSelection,
    resolution_wh: tuple[int, int],
) -> int:
    """Landmarks, hands, then joint angles in degrees (empty where a joint was not visible enough)."""
    writer = csv.writer(out)
    writer.writerow(pose_csv_header(selection))
    count = 0
    for row in rows:
        lm = row.pose.landmarks_xyzv
        values: list[Any] = [
            video_id,
            row.seq,
            f"{row.t_s:.4f}",
            row.person,
            _blank(row.track_id),
            f"{row.pose.score:.4f}",
        ]
        for i in selection.body:
            values.extend(f"{v:.5f}" for v in lm[i])
        for side in selection.hands:
            values.extend(_hand_csv(row.pose.hand(side)))
        values.extend("" if math.isnan(a) else f"{a:.1f}" for a in _angles(row, resolution_wh).as_row())
        writer.writerow(values)
        count += 1
    return count


def write_poses_json(
    out: TextIO,
    video_id: int,
    rows: Iterable[StoredPose],
    selection: LandmarkSelection,
    resolution_wh: tuple[int, int],
) -> int:
    """One JSON document, written row by row so a long video never sits in memory. Each selected
    hand is `{"score", "landmarks": 21 x [x, y, z]}`, or null where that hand was not found."""
    names = [LANDMARK_NAMES[i] for i in selection.body]
    head: dict[str, Any] = {"video_id": video_id, "landmarks": names, "fields": list(LANDMARK_FIELDS)}
    if selection.hands:
        head["hands"] = [side.value for side in selection.hands]
        head["hand_landmarks"] = list(HAND_LANDMARK_NAMES)
        head["hand_fields"] = list(HAND_FIELDS)
    out.write(json.dumps(head)[:-1])
    out.write(', "poses": [')
    count = 0
    for row in rows:
        lm = row.pose.landmarks_xyzv
        item: dict[str, Any] = {
            "seq": row.seq,
            "t_s": round(row.t_s, 4),
            "person": row.person,
            "track_id": row.track_id,
            "score": round(row.pose.score, 4),
            "landmarks": [[round(float(v), 5) for v in lm[i]] for i in selection.body],
        }
        if row.pose.world_xyz_m is not None:
            item["world_landmarks_m"] = [
                [round(float(v), 5) for v in row.pose.world_xyz_m[i]] for i in selection.body
            ]
        for side in selection.hands:
            item[side.value] = _hand_json(row.pose.hand(side))
        item["angles_deg"] = {
            name: None if math.isnan(v) else round(v, 1)
            for name, v in zip(ANGLE_COLUMNS, _angles(row, resolution_wh).as_row(), strict=True)
        }
        out.write(("," if count else "") + "\n" + json.dumps(item))
        count += 1
    out.write("\n]}\n")
    return count


# The CSV and table columns: the event view's (posepipe.views.EventView) first fields; the JSON
# export is the whole view, as the API gives it.
EVENT_FIELDS = (
    "id",
    "video_id",
    "source_id",
    "type",
    "track_id",
    "t_start_s",
    "t_end_s",
    "confidence",
    "data",
)


def write_events(out: TextIO, views: Sequence[EventView], fmt: str) -> None:
    if fmt == "json":
        json.dump({"schema_version": SCHEMA_VERSION, "events": [v.document() for v in views]}, out, indent=1)
        out.write("\n")
        return
    items = [v.model_dump(mode="json", include=set(EVENT_FIELDS)) for v in views]
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(EVENT_FIELDS)
        for item in items:
            writer.writerow([json.dumps(item[f]) if f == "data" else _blank(item[f]) for f in EVENT_FIELDS])
    else:
        out.write(
            f"{'id':>6} {'video':>5} {'type':<13} {'track':>5} {'start_s':>8} {'end_s':>8} "
            f"{'conf':>5}  data\n"
        )
        for i in items:
            data = json.dumps(i["data"], separators=(",", ":"))
            out.write(
                f"{i['id']:>6} {_blank(i['video_id']):>5} {i['type']:<13} {_blank(i['track_id']):>5} "
                f"{i['t_start_s']:>8.2f} {i['t_end_s']:>8.2f} {i['confidence']:>5.2f}  "
                f"{data if len(data) <= 100 else data[:97] + '...'}\n"
            )


def _blank(value: Any) -> Any:
    return "" if value is None else value
