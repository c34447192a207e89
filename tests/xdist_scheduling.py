"""How scripts/test shares the suite among pytest-xdist's worker processes (`-n N --dist loadscope`).

A unit of work is a test module, as with xdist's own loadscope, so a module-scoped fixture (an API
server, an analysed clip, a loaded model) is still made once; tests/analytics is one unit, since its
modules share the session's posed clips (tests/analytics/conftest.py). Units are handed out longest
first, by the module times measured in a whole-suite run, so that no worker starts a long module
when the others are nearly done; except test_eval.py, by far the longest, which keeps both cores
busy on its own: it is handed out last, so that it runs (nearly) alone as it does in a one-process
run and the tests that keep real time (live pages, streams, brokers) never share the machine with it.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

# Seconds each took in a whole-suite run on a 2-core machine (pytest --durations=0, summed per
# unit); the units not named here are shorter than all of these and keep their collection order.
MEASURED_S = {
    "tests/test_eval.py": 684,
    "tests/analytics": 131,
    "tests/test_mqtt.py": 131,
    "tests/test_event_stream.py": 109,
    "tests/test_recovery.py": 81,
    "tests/test_live.py": 73,
    "tests/test_packaging.py": 72,
    "tests/test_api_fuzz.py": 69,
    "tests/test_faults.py": 69,
    "tests/test_segments.py": 67,
    "tests/test_multi_pose.py": 51,
    "tests/test_live_view.py": 49,
    "tests/test_estimator.py": 40,
    "tests/test_pipeline.py": 39,
    "tests/test_api.py": 34,
    "tests/test_cli.py": 33,
    "tests/test_stream.py": 29,
    "tests/test_payload.py": 25,
    "tests/test_hands.py": 24,
    "tests/test_worker_memory.py": 24,
    "tests/test_input_matrix.py": 22,
}
# A unit this long keeps the machine busy on its own: it goes last.
LONG_S = 300


def unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, or tests/analytics."""
    if nodeid.startswith("tests/analytics/"):
        return "tests/analytics"
    return nodeid.split("::", 1)[0]


def longest_first(items: list[Any]) -> None:
    """Put `items` (a worker's collection) in the order their units are to be handed out. Every
    worker sorts alike, and xdist queues the units in the order of the collection."""
    units = list(dict.fromkeys(unit(item.nodeid) for item in items))

    def key(u: str) -> tuple[bool, int]:
        return MEASURED_S.get(u, 0) >= LONG_S, -MEASURED_S.get(u, 0)

    rank = {u: i for i, u in enumerate(sorted(units, key=key))}  # stable: the rest keep their order
    items.sort(key=lambda item: rank[unit(item.nodeid)])


class ModuleScheduling(LoadScopeScheduling):
    """xdist's loadscope, with tests/analytics as one unit and the longest units first (with
    --no-loadscope-reorder, which would otherwise put the units with the most tests first)."""

    def _split_scope(self, nodeid: str) -> str:
        return unit(nodeid)
