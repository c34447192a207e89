"""Dependencies run one way (issue 20): every import of every module, function-level and
TYPE_CHECKING ones included, read from the source with ast.

    common <- pipeline, pose <- analytics <- storage <- workers <- posepipe

A package may import itself and the packages to its left. pipeline and pose sit side by side
and do not import each other, but for one edge: the pose backends take `pipeline.frames.Frame`
(the upright RGB image the pipeline produces), so pose may import pipeline.frames and nothing
else of pipeline.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"common": 0, "pipeline": 1, "pose": 1, "analytics": 2, "storage": 3, "workers": 4, "posepipe": 5}
# The one import between the two packages of the same rank (see the module docstring).
SIDEWAYS = {("pose", "pipeline.frames")}
# Imports against the direction that are still there, each with why; the test fails when one
# goes away (delete it here) as when a new one comes. None is left (issue 20).
KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name `module`'s source imports, wherever the import statement is."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A package's own name is its base for `from . import x`; a module's is its parent.
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pipeline import keys` imports pipeline.keys: name the submodule when it is one.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if _is_module(sub) else target


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def allowed(importer: str, target: str) -> bool:
    own, theirs = importer.split(".")[0], target.split(".")[0]
    if theirs not in RANK or own == theirs:
        return True
    if RANK[theirs] < RANK[own]:
        return True
    return RANK[theirs] == RANK[own] and any(
        own == pkg and (target == mod or target.startswith(mod + ".")) for pkg, mod in SIDEWAYS
    )


def violations_in(source: str, module: str, is_package: bool = False) -> set[tuple[str, str]]:
    tree = ast.parse(source)
    return {(module, target) for target in imported(tree, module, is_package) if not allowed(module, target)}


def project_modules() -> Iterator[Path]:
    for package in RANK:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_every_package_is_checked() -> None:
    assert {p.relative_to(ROOT).parts[0] for p in project_modules()} == set(RANK)
    assert sum(1 for _ in project_modules()) > 100


def test_imports_run_one_way() -> None:
    found: set[tuple[str, str]] = set()
    for path in project_modules():
        module = module_name(path)
        found |= violations_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
    # Compared by the modules only: one entry covers every import of that module by that module.
    assert sorted(found - set(KNOWN)) == [], "imports against the direction (see the module docstring)"
    assert sorted(set(KNOWN) - found) == [], "gone: delete these from KNOWN"


def test_a_function_level_import_against_the_direction_is_caught() -> None:
    source = "def report():\n    from posepipe.cli import main\n    return main\n"
    assert violations_in(source, "analytics.report") == {("analytics.report", "posepipe.cli")}


def test_pipeline_and_pose_do_not_import_each_other_but_for_frame() -> None:
    live, estimator = "pipeline.live", "pose.estimator"
    assert violations_in("from pose.types import Pose\n", live) == {(live, "pose.types")}
    assert violations_in("from pipeline import keys\n", estimator) == {(estimator, "pipeline.keys")}
    assert violations_in("from pipeline.frames import Frame\n", estimator) == set()


def test_relative_imports_are_resolved() -> None:
    reps = "analytics.reps.x"
    assert violations_in("from ..storage import db\n", reps) == set()
    assert violations_in("from ...storage import db\n", reps) == {(reps, "storage.db")}
    assert violations_in("from . import keys\n", "pipeline", is_package=True) == set()
