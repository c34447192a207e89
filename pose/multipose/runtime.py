"""The TFLite runtime (ai-edge-litert) and the model files: LiteRT is imported here and nowhere else.

The models are the ones the mediapipe wheel ships, read from the installed package (never
copied into the repository, never downloaded): the two pose models here, and the hand landmark
model for pose.hands. Outputs are named by their shapes, not by the converter's tensor names
(`Identity_3`), which say nothing and may change; only a model with two outputs of one shape
(the hand landmark model: landmarks and world landmarks, presence and handedness) is read by
output order (`run_ordered`).
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pose.multipose import constants as c


class ModelLoadError(RuntimeError):
    """A pose model file is missing from the installed mediapipe package, or LiteRT cannot load it."""


def model_path(relative: str) -> str:
    """Absolute path of a model file inside the installed mediapipe distribution.

    Found through the distribution's metadata, which does not import mediapipe (that stays in
    pose.estimator, for the mediapipe backend).
    """
    try:
        dist = importlib.metadata.distribution(c.MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelLoadError(f"{c.MODEL_PACKAGE} is not installed; its wheel ships the pose models") from exc
    path = Path(str(dist.locate_file(f"{c.MODEL_PACKAGE}/{relative}")))
    if not path.is_file():
        # The wheel ships the detector and the full landmark model; scripts/install adds lite and heavy.
        raise ModelLoadError(
            f"pose model {path} is missing from the installed {c.MODEL_PACKAGE} package; run scripts/install"
        )
    return str(path)


@dataclass
class TfliteModel:
    """One loaded model with a single float32 input; `run` returns its outputs by shape."""

    name: str
    _interpreter: object
    _input_index: int
    _outputs: tuple[tuple[int, tuple[int, ...]], ...]
    input_shape: tuple[int, ...]

    @classmethod
    def load(cls, relative: str) -> TfliteModel:
        # Quiet TFLite's C++ banner ("Created TensorFlow Lite XNNPACK delegate") unless asked.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from ai_edge_litert.interpreter import Interpreter

        path = model_path(relative)
        try:
            interpreter = Interpreter(model_path=path, num_threads=c.INTERPRETER_THREADS)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT cannot load {path}: {exc}") from exc
        (inp,) = interpreter.get_input_details()
        outputs = tuple(
            (int(d["index"]), tuple(int(s) for s in d["shape"])) for d in interpreter.get_output_details()
        )
        return cls(relative, interpreter, int(inp["index"]), outputs, tuple(int(s) for s in inp["shape"]))

    @property
    def output_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(shape for _index, shape in self._outputs)

    def run(self, tensor: np.ndarray) -> dict[tuple[int, ...], np.ndarray]:
        """Run on one input (its shape must be the model's); outputs keyed by their shape."""
        self._invoke(tensor)
        interp = self._interpreter
        return {shape: interp.get_tensor(index) for index, shape in self._outputs}  # type: ignore[attr-defined]

    def run_pixels(
        self,
        pixels: np.ndarray,
        value_range: tuple[float, float],
        shapes: tuple[tuple[int, ...], ...] | None = None,
    ) -> dict[tuple[int, ...], np.ndarray]:
        """Run on a uint8 picture (the input's shape without the batch), its values 0..255 mapped
        to `value_range`; the outputs of `shapes` (default all) keyed by their shape.

        The picture is scaled straight into the interpreter's input buffer: one pass, where
        building a float tensor and handing it over takes three passes and two copies (~0.4 ms
        of a 256x256 crop, at ~10 ms a landmark inference).
        """
        if (1, *pixels.shape) != self.input_shape:
            raise ValueError(f"{self.name}: picture shape {pixels.shape}, the model wants {self.input_shape}")
        lo, hi = value_range
        interp = self._interpreter
        # A view of LiteRT's own input buffer: it must be released before invoke(), which
        # refuses to run while Python holds a reference into the interpreter's memory.
        buffer = interp.tensor(self._input_index)()[0]  # type: ignore[attr-defined]
        # In float32 throughout, as `pixels.astype(np.float32) * scale + lo` computes it.
        np.multiply(pixels, np.float32((hi - lo) / 255.0), out=buffer, dtype=np.float32)
        if lo:
            buffer += np.float32(lo)
        del buffer
        interp.invoke()  # type: ignore[attr-defined]
        return {
            shape: interp.get_tensor(index)  # type: ignore[attr-defined]
            for index, shape in self._outputs
            if shapes is None or shape in shapes
        }

    def run_ordered(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run on one input; the outputs in the model's own output order."""
        self._invoke(tensor)
        interp = self._interpreter
        return [interp.get_tensor(index) for index, _shape in self._outputs]  # type: ignore[attr-defined]

    def _invoke(self, tensor: np.ndarray) -> None:
        if tensor.shape != self.input_shape:
            raise ValueError(f"{self.name}: input shape {tensor.shape}, the model wants {self.input_shape}")
        interp = self._interpreter
        interp.set_tensor(self._input_index, np.ascontiguousarray(tensor, dtype=np.float32))  # type: ignore[attr-defined]
        interp.invoke()  # type: ignore[attr-defined]
