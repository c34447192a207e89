"""Reading pickles that hold pose types, also those written before the types moved.

Engine states saved in the database (storage.analytics_state) and bench's pose cache hold
Pose and FramePoses objects; a pickle names each class by its module, and until issue 20 that
module was `workers.poses`. Such a pickle (an analysis in progress across an upgrade, a cache
entry) still loads: the old module name is read as the new one.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

# Where pose types lived before, and where they are now.
FORMER_MODULES = {"workers.poses": "pose.types"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(FORMER_MODULES.get(module, module), name)


def loads(blob: bytes) -> Any:
    """pickle.loads, with classes of a former module taken from where they live now."""
    return _Unpickler(io.BytesIO(blob)).load()
