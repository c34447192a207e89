"""Exercise repetitions: complete reps counted per track, sets, form flags, exercise recognition."""

from analytics.reps.detector import RepDetector

__all__ = ["RepDetector"]
