"""Several people per frame: BlazePose's detector and landmark models run directly with LiteRT.

`estimator.MultiPoseEstimator` is the backend (`--pose-backend multi`); `detector`,
`landmarks` and `regions` are its stages, `runtime` the one place LiteRT is imported, and
`constants` every number with its source. docs/multi_pose.md describes the algorithm.
"""
