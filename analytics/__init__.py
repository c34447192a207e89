"""Analytics: person tracks, smoothing, joint angles and the detectors (repetitions, falls), in time order."""
