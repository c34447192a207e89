"""Pose: the pose types and landmark topology (`types`), and the backends that turn a Frame into Poses."""
