"""BlazePose on a zoomed window around where a lost person was last seen (pose.rescue runs it).

Owns the window (where and how big), the detector's run on it, the mapping of what it finds
back into the whole frame, following the person found that way to the next frame, and the
search of a whole frame by windows when nobody was seen before (a chunk's first frame).

BlazePose's detector sees the whole frame letterboxed into 224x224 and was trained on people
who fill much of a picture: a person a fifth of a 16:9 frame's height is ~25 px tall in its
input, their face ~3 px, and it finds them far less often (docs/analytics.md, "A person half
as big in the frame": frames with a person 186 -> 77 on the porch steps when the picture is
halved). The same detector on a square window a couple of body sizes wide around where the
person was sees them as large as in the pictures it finds people in. The landmark model then
runs on the whole frame with the detection's region in frame pixels (its own crop is a
256x256 warp of that region, so the person's size in the frame does not matter to it): x, y
come out as fractions of the whole frame, z in the scale of x, the world landmarks (metres
around the hips) and visibilities as the model gives them, exactly as `pose.litert` gives
them for a person the detector found on the whole frame.

It runs on LiteRT beside MediaPipe's graph, never through it: the graph's own tracking state
(what it follows into the next frame) is not touched, so BlazePose's own poses are the same
bytes with or without the zoom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose.litert import RegionFollower, pose_of
from pose.multipose import constants as c
from pose.multipose.detector import Detection, PoseDetector
from pose.multipose.landmarks import LandmarkModel, PersonLandmarks
from pose.multipose.regions import RotatedRect
from pose.types import Pose

# The window's side in body sizes (the larger of the last pose's width and height): the person
# then fills half of the window, as a person standing fills half or more of the height of the
# frames the detector finds people in (a fitness or phone picture), and a quarter body size of
# margin either way leaves room for the body to have moved or turned since (a standing body
# that falls lies about one body size long, still inside a window centred on where it stood).
WINDOW_BODY_SIZES = 2.0


# A chunk's first frame has no past to say where to look: when neither BlazePose nor MoveNet
# finds anyone on it, the detector is run on squares this fraction of the frame's shorter side,
# overlapping by half, over the whole frame. A person up to half a square tall (a quarter of
# the frame's height: a person across a room from a wall or ceiling camera) then lies wholly
# inside one square and fills at least a quarter of it, as large as a person half the frame's
# height in the whole frame, which the detector finds.
SEARCH_WINDOW_FRACTION = 0.5


@dataclass(frozen=True)
class Window:
    """A square of the frame in pixels: left, top, side (inside the frame)."""

    x0: int
    y0: int
    side: int

    def detection_to_frame(self, detection: Detection, image_wh: tuple[int, int]) -> Detection:
        """A detection made on this window (fractions of the window) in fractions of the frame."""
        scale = np.array([self.side / image_wh[0], self.side / image_wh[1]])
        offset = np.array([self.x0 / image_wh[0], self.y0 / image_wh[1]])
        return Detection(
            score=detection.score,
            box_xyxy=detection.box_xyxy * np.tile(scale, 2) + np.tile(offset, 2),
            keypoints_xy=detection.keypoints_xy * scale + offset,
        )

    def of(self, rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rgb[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side])


def zoom_window(last: Pose, image_wh: tuple[int, int]) -> Window | None:
    """The window to look for `last`'s person in, or None when it would show them no larger
    than the whole frame does.

    Centred on the middle of the last pose's landmarks, WINDOW_BODY_SIZES times their larger
    extent wide, no wider than the frame's shorter side, and moved inside the frame. The
    detector sees the whole frame letterboxed by its longer side, so a window narrower than
    that side enlarges the person; one as wide is the picture that already found nobody.
    """
    width, height = image_wh
    xy = last.landmarks_xyzv[:, :2].astype(np.float64) * (width, height)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    side = int(round(min(WINDOW_BODY_SIZES * float((hi - lo).max()), width, height)))
    if side < 1 or side >= max(width, height):
        return None
    centre = (lo + hi) / 2
    x0 = int(round(np.clip(centre[0] - side / 2, 0, width - side)))
    y0 = int(round(np.clip(centre[1] - side / 2, 0, height - side)))
    return Window(x0, y0, side)


def search_windows(image_wh: tuple[int, int]) -> list[Window]:
    """Squares SEARCH_WINDOW_FRACTION of the frame's shorter side, overlapping by half, covering
    the frame (the last row and column flush with its edges)."""
    width, height = image_wh
    side = max(1, int(round(SEARCH_WINDOW_FRACTION * min(width, height))))
    step = max(1, side // 2)

    def starts(length: int) -> list[int]:
        out = list(range(0, max(length - side, 0) + 1, step))
        if out[-1] != length - side:
            out.append(length - side)
        return out

    return [Window(x0, y0, side) for y0 in starts(height) for x0 in starts(width)]


def _torso_in_frame(person: PersonLandmarks) -> bool:
    """Whether the middle of the shoulders and hips lies inside the frame. A window cut from
    the scenery makes the detector guess whole bodies from a head or a shape at its edge (on an
    empty room's desk and chair: shoulders and hips below the picture, at 1.1-1.45 of its
    height); a body whose torso is not in the picture was not seen, and the zoom only looks for
    someone just seen in it."""
    centre = person.landmarks_xyzv[list(c.TORSO_LANDMARKS), :2].mean(axis=0)
    return bool(np.all((centre >= 0.0) & (centre <= 1.0)))


class ZoomFinder:
    """BlazePose's detector on a window around a lost person, then its landmark model.

    Once it has found the person, the next frame (if BlazePose's graph still has nobody) is
    posed in the region their landmarks give, as MediaPipe's graph follows a person, without
    the detector; `forget()` drops that region (the caller does so on every frame the zoom did
    not pose). `min_detection_confidence` and `min_tracking_confidence` are mp.solutions.pose's
    two thresholds, as for the `litert` backend.
    """

    def __init__(
        self, min_detection_confidence: float, min_tracking_confidence: float, model: str = "full"
    ) -> None:
        self.min_tracking_confidence = min_tracking_confidence
        # A window is cut from the scenery around where someone was (or from anywhere, in the
        # search): at the settings' 0.3 the detector sees people in furniture and edges there,
        # as the `multi` backend's strips do (STRIP_MIN_SCORE, MediaPipe's own default, has the
        # measurement); an empty room's first 4 s were followed as a person at 0.3.
        self._detector = PoseDetector(max(min_detection_confidence, c.STRIP_MIN_SCORE))
        self._landmarks = LandmarkModel(model)
        self._follower = RegionFollower()
        # Model runs so far (bench numbers and tests): detector on a window, landmark model.
        self.detector_runs = 0
        self.landmark_runs = 0

    def forget(self) -> None:
        self._follower.lose()

    def find(self, rgb: np.ndarray, last: Pose) -> Pose | None:
        """The person last seen as `last`, posed in the region carried from the previous frame,
        else found on a window around `last`; None if neither holds a person."""
        image_wh = (rgb.shape[1], rgb.shape[0])
        if self._follower.region is not None:
            person = self._pose(rgb, self._follower.region)
            if person is not None:
                return pose_of(person)
        window = zoom_window(last, image_wh)
        if window is None:
            return None
        self.detector_runs += 1
        detections = self._detector.detect(window.of(rgb))
        if not detections:
            return None
        # Weighted NMS gives detections best first; MediaPipe's graph takes the first.
        region = window.detection_to_frame(detections[0], image_wh).region(image_wh)
        person = self._pose(rgb, region)
        return None if person is None else pose_of(person)

    def search(self, rgb: np.ndarray) -> Pose | None:
        """The best detection over the search windows (search_windows), posed; None if the
        detector finds nobody in any of them or the landmark model sees nobody there."""
        image_wh = (rgb.shape[1], rgb.shape[0])
        found: list[Detection] = []
        for window in search_windows(image_wh):
            self.detector_runs += 1
            found += [window.detection_to_frame(d, image_wh) for d in self._detector.detect(window.of(rgb))]
        if not found:
            return None
        best = max(found, key=lambda d: d.score)
        person = self._pose(rgb, best.region(image_wh))
        return None if person is None else pose_of(person)

    def _pose(self, rgb: np.ndarray, region: RotatedRect) -> PersonLandmarks | None:
        self.landmark_runs += 1
        person = self._landmarks.estimate(rgb, region)
        # MediaPipe's ThresholdingCalculator: a person is present strictly over the threshold.
        if not person.presence > self.min_tracking_confidence or not _torso_in_frame(person):
            self.forget()
            return None
        self._follower.follow(person)
        return person
