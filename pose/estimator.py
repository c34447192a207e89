"""Pose backends: turn a Frame into the Poses found in it. MediaPipe is imported here and nowhere
else (`import_mediapipe`, which pose.hand_landmarks calls for MediaPipe Hands).

`mediapipe` (mp.solutions.pose, one person) is defined here; `litert` (the same one-person
graph and models, run with LiteRT without MediaPipe) lives in pose.litert, `multi` (several
people, the same models run with LiteRT) in pose.multipose, `movenet` (MoveNet MultiPose, up
to 6 people) in pose.movenet, and `mediapipe+movenet` / `litert+movenet` (BlazePose, MoveNet
where BlazePose lost the person) in pose.rescue; all are registered in BACKENDS.

The BlazePose backends take a landmark model (POSE_MODELS: lite, full, heavy). What posed a
video is one string, its pose spec (`pose_spec`): the backend's name, then `:lite` or
`:heavy` when the model is not the default full one (so specs, and the analysis cache keys
built from them, of everything analysed before the choice existed stay valid). It is stored
as the video's `pose_backend`, so every worker poses a video with the model it was planned
with, and a different model is a different cache key. `+hands` at the end of a spec adds each
person's hands (pose.hands, which runs MediaPipe Hands), so hands on or off is a different
cache key too.

A backend holds a loaded model, so it is built once per worker (see workers.context) and
`reset()` between chunks: chunks are posed independently, so a chunk's result never depends
on which worker ran it or what that worker ran before.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from pipeline.frames import Frame
from pose import model_files
from pose.types import Pose

# What `import mediapipe` imports and posepipe never uses: matplotlib (by its drawing utilities)
# and the Tasks API (mp.solutions is what poses). Parents before children: a module found in
# `sys.modules` is not imported, nor is its parent package.
_DEFERRED_BY_MEDIAPIPE = ("matplotlib", "matplotlib.pyplot", "mediapipe.tasks", "mediapipe.tasks.python")
# One `import mediapipe` at a time: the stand-ins it is imported with are process-wide.
_IMPORT_LOCK = threading.Lock()

# BlazePose landmark models, in the order of mp.solutions.pose's model_complexity (0, 1, 2).
POSE_MODELS: tuple[str, ...] = ("lite", "full", "heavy")
DEFAULT_POSE_MODEL = "full"  # the one the mediapipe wheel ships
# The files scripts/install adds beside the wheel's full model.
_INSTALLED_MODELS = {"lite": model_files.BLAZEPOSE_LITE, "heavy": model_files.BLAZEPOSE_HEAVY}


class PoseEstimator(Protocol):
    name: str

    def reset(self) -> None:
        """Forget tracking state; the next frame is treated as the first of a sequence."""

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        """Do now, off the posing path, what the next `reset()` would cost for a next frame of
        `shape` (a pose job calls it in a thread after its last frame). Nothing, for a backend
        whose reset costs nothing."""

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        """The people found in `frame`, in the backend's order."""

    def close(self) -> None: ...


def require_landmark_model(model: str) -> None:
    """Raise model_files.ModelMissingError unless BlazePose's `model` is installed.

    mp.solutions.pose downloads a missing lite or heavy model from the network when it starts;
    asking first turns that into a clear error naming the install command.
    """
    if model not in POSE_MODELS:
        raise ValueError(f"unknown pose model {model!r}; choose from {', '.join(POSE_MODELS)}")
    if model in _INSTALLED_MODELS:
        model_files.installed_path(_INSTALLED_MODELS[model])


class MediaPipeEstimator:
    """`mp.solutions.pose` with one of BlazePose's landmark models (`model`: lite, full or heavy;
    full ships in the wheel, scripts/install adds the others; never a download).

    Tracking mode: after a detection the landmark model follows the person from the previous
    frame's landmarks, which costs about half of a detection. It finds one person per frame.
    MediaPipe's own landmark smoothing is off: stored landmarks are raw, and analytics smooth
    them with real timestamps (MediaPipe's solution API assumes a fixed frame interval).

    `reset()` does not restart MediaPipe's graph (the solution API's own reset), which reloads
    both models and rebuilds their XNNPACK delegates: 160-260 ms of CPU, paid by every chunk
    (a 32-frame file chunk: ~5 ms a frame). It makes the graph lose the person instead: the
    next frame is preceded by a black one, in which the landmark model finds nobody where the
    person was. That empties the graph's loop of previous landmarks and resets its region
    smoothing, which is all the tracking state there is, so the next frame starts from the
    detector exactly as after a restart (tests/test_estimator.py: the same bytes on real
    clips) for one inference (~20 ms).
    """

    name = "mediapipe"
    # Counts constructions in this process: the worker tests prove one model per process.
    instances_created: ClassVar[int] = 0

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        model: str = DEFAULT_POSE_MODEL,
    ) -> None:
        require_landmark_model(model)
        # Quiet MediaPipe's C++ logging (glog/TFLite banners on stderr) unless the user asked.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        mp = import_mediapipe()

        self._pose = mp.solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=POSE_MODELS.index(model),
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self.model = model
        self._forget_before_next = False
        # The shape of the blank frame posed by forget_ahead, until the next frame is posed.
        self._forgotten_shape: tuple[int, ...] | None = None
        MediaPipeEstimator.instances_created += 1

    def reset(self) -> None:
        self._forget_before_next = True

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        """Forget the person now, for a next frame of `shape` (a pose job's next chunk is most
        often the same video's): the reset's blank frame is then posed while the caller does
        other work, and the next frame of that shape after a reset starts from it. The graph
        sees the same frames in the same order as when the reset poses the blank itself."""
        self._forget_person(shape)
        self._forgotten_shape = shape

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        if self._forget_before_next and self._forgotten_shape != frame.rgb.shape:
            self._forget_person(frame.rgb.shape)
        self._forget_before_next = False
        self._forgotten_shape = None
        pose = Pose.from_mediapipe(self._pose.process(frame.rgb))
        return () if pose is None else (pose,)

    def _forget_person(self, shape: tuple[int, ...]) -> None:
        # The frame's own size: nothing in the graph then sees a change of size.
        self._forget_before_next = False
        self._forgotten_shape = None
        if self._pose.process(self._blank(shape)).pose_landmarks is not None:
            # A person found in the blank (never seen): only a restart is sure to forget.
            self._pose.reset()

    @staticmethod
    def _blank(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.uint8)

    def close(self) -> None:
        self._pose.close()


def _multi_person(
    min_detection_confidence: float, min_tracking_confidence: float, model: str
) -> PoseEstimator:
    """Several people per frame (pose.multipose; LiteRT is imported only when this is chosen)."""
    from pose.multipose.estimator import MultiPoseEstimator

    require_landmark_model(model)
    return MultiPoseEstimator(min_detection_confidence, min_tracking_confidence, model)


def _movenet(min_detection_confidence: float, min_tracking_confidence: float, model: str) -> PoseEstimator:
    """MoveNet MultiPose (pose.movenet): its own person score, no BlazePose model to choose."""
    from pose.movenet import MoveNetEstimator

    return MoveNetEstimator()


def _litert(min_detection_confidence: float, min_tracking_confidence: float, model: str) -> PoseEstimator:
    """mp.solutions.pose's graph with BlazePose `model`, run by LiteRT (pose.litert)."""
    from pose.litert import LiteRtPoseEstimator

    require_landmark_model(model)
    return LiteRtPoseEstimator(min_detection_confidence, min_tracking_confidence, model)


def _rescued(min_detection_confidence: float, min_tracking_confidence: float, model: str) -> PoseEstimator:
    """BlazePose `model`, with MoveNet on the frames where it lost the person (pose.rescue)."""
    from pose.movenet import MoveNetEstimator
    from pose.rescue import RescuedEstimator
    from pose.zoom import ZoomFinder

    primary = MediaPipeEstimator(min_detection_confidence, min_tracking_confidence, model)
    model_files.installed_path(model_files.MOVENET_MULTIPOSE)  # missing: an error now, not mid-video

    def zoom() -> ZoomFinder:
        # The same thresholds and landmark model as the graph's, on LiteRT beside it (pose.zoom).
        return ZoomFinder(min_detection_confidence, min_tracking_confidence, model)

    return RescuedEstimator(primary, MoveNetEstimator, make_zoom=zoom)


def _litert_rescued(
    min_detection_confidence: float, min_tracking_confidence: float, model: str
) -> PoseEstimator:
    """`litert`, with MoveNet on the frames where it lost the person (pose.rescue)."""
    from pose.movenet import MoveNetEstimator
    from pose.rescue import RescuedEstimator

    primary = _litert(min_detection_confidence, min_tracking_confidence, model)
    model_files.installed_path(model_files.MOVENET_MULTIPOSE)  # missing: an error now, not mid-video
    return RescuedEstimator(primary, MoveNetEstimator, name="litert+movenet")


# Backend name -> factory(min_detection_confidence, min_tracking_confidence, model).
BACKENDS: dict[str, Callable[[float, float, str], PoseEstimator]] = {
    "mediapipe": MediaPipeEstimator,
    "multi": _multi_person,
    "movenet": _movenet,
    "mediapipe+movenet": _rescued,
    "litert": _litert,
    "litert+movenet": _litert_rescued,
}
# The backends that run a BlazePose landmark model, so take POSE_MODELS.
MODEL_BACKENDS = frozenset({"mediapipe", "multi", "mediapipe+movenet", "litert", "litert+movenet"})


# What a spec ends with when hands are on.
HANDS_SUFFIX = "+hands"


@dataclass(frozen=True)
class PoseSpec:
    """A backend, the landmark model it runs (DEFAULT_POSE_MODEL for backends without a choice),
    and whether each person's hands are found too."""

    backend: str
    model: str = DEFAULT_POSE_MODEL
    hands: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown pose backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if self.model not in POSE_MODELS:
            raise ValueError(f"unknown pose model {self.model!r}; choose from {', '.join(POSE_MODELS)}")
        if self.backend not in MODEL_BACKENDS and self.model != DEFAULT_POSE_MODEL:
            raise ValueError(f"pose backend {self.backend} has no model choice ({self.model!r} given)")

    @classmethod
    def parse(cls, spec: str) -> PoseSpec:
        hands = spec.endswith(HANDS_SUFFIX)
        backend, _, model = spec.removesuffix(HANDS_SUFFIX).partition(":")
        return cls(backend, model or DEFAULT_POSE_MODEL, hands)

    def __str__(self) -> str:
        body = self.backend if self.model == DEFAULT_POSE_MODEL else f"{self.backend}:{self.model}"
        return body + (HANDS_SUFFIX if self.hands else "")


def pose_spec(backend: str, model: str = DEFAULT_POSE_MODEL, hands: bool = False) -> str:
    """The spec string of `backend` running `model`, with hands or not; backends without a model
    choice ignore it (a MoveNet analysis does not change with POSEPIPE_POSE_MODEL)."""
    return str(PoseSpec(backend, model if backend in MODEL_BACKENDS else DEFAULT_POSE_MODEL, hands))


def create_estimator(spec: str, min_confidence: float) -> PoseEstimator:
    """A backend from its spec (`mediapipe`, `multi:heavy`, `movenet+hands`...)."""
    parsed = PoseSpec.parse(spec)
    estimator = BACKENDS[parsed.backend](min_confidence, min_confidence, parsed.model)
    if not parsed.hands:
        return estimator
    # Imported here: pose.hands builds on this module.
    from pose.hand_landmarks import HandFinder
    from pose.hands import HandsEstimator

    return HandsEstimator(estimator, HandFinder(min_confidence))


def import_mediapipe():  # noqa: ANN201 - the mediapipe module (untyped)
    """`import mediapipe`, with matplotlib and MediaPipe's Tasks API imported only if used.

    `import mediapipe` imports its drawing utilities, which `import matplotlib.pyplot` (0.5-1.2 s
    of a command's start-up, more on a first run, which builds matplotlib's font cache; the
    package alone, with pyparsing and PIL, 0.15-0.25 s), and `mediapipe.tasks.python` (0.2 s):
    spent before the first frame is posed, by a program that never plots and poses with
    mp.solutions. So mediapipe is imported with stand-ins registered under those names
    (_DEFERRED_BY_MEDIAPIPE), taken out of `sys.modules` again right after: whoever imports them
    later gets the real modules, and what mediapipe holds (the drawing utilities' `plt`,
    `mediapipe.tasks`) are stand-ins whose first attribute read imports the real module
    (tests/test_estimator.py checks both ways).
    """
    with _IMPORT_LOCK:
        if "mediapipe" in sys.modules:
            return sys.modules["mediapipe"]
        stand_ins = {n: _DeferredModule(n) for n in _DEFERRED_BY_MEDIAPIPE if n not in sys.modules}
        for name, module in stand_ins.items():
            parent, _, child = name.rpartition(".")
            if parent in stand_ins:
                # `import a.b as c` reads `b` from `a`: it must find the stand-in, not ask for it.
                setattr(stand_ins[parent], child, module)
        sys.modules.update(stand_ins)
        try:
            import mediapipe
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return mediapipe


class _DeferredModule(types.ModuleType):
    """A module imported on first use (never in `sys.modules` by then, see import_mediapipe).
    Only missing attributes reach `__getattr__`, so the import system's own look-ups
    (`__spec__`, `__name__`) do not trigger it."""

    def __getattr__(self, attr: str) -> object:
        return getattr(importlib.import_module(self.__name__), attr)
