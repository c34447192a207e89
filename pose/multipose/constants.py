"""Every number of the multi-person pose backend, with its unit and where it comes from.

Numbers marked "graph" are the ones MediaPipe's own pose graph uses (read from the expanded
`pose_landmark_cpu.binarypb` of the installed mediapipe 0.10.21 wheel, whose subgraphs
`PoseDetectionCpu`, `PoseDetectionToRoi`, `PoseLandmarkByRoiCpu`, `PoseLandmarkFiltering`
and `PoseLandmarksToRoi` hold them); changing one makes this backend disagree with
`mp.solutions.pose`. The others are this backend's own, for several people.
"""

from __future__ import annotations

import math

from pose.types import (
    L_EAR,
    L_EYE,
    L_HIP,
    L_SHOULDER,
    N_LANDMARKS,
    NOSE,
    R_EAR,
    R_EYE,
    R_HIP,
    R_SHOULDER,
)

# --- the models, as shipped in the mediapipe wheel (loaded from the installed package) ---
MODEL_PACKAGE = "mediapipe"
DETECTOR_MODEL = "modules/pose_detection/pose_detection.tflite"
# BlazePose's landmark models by name (model_complexity 0, 1, 2 in mp.solutions.pose): the
# wheel ships full; lite and heavy are installed beside it by scripts/install (pose.model_files).
# All three take the same 256x256 crop and give the same outputs, so everything below holds for each.
LANDMARK_MODELS = {
    "lite": "modules/pose_landmark/pose_landmark_lite.tflite",
    "full": "modules/pose_landmark/pose_landmark_full.tflite",
    "heavy": "modules/pose_landmark/pose_landmark_heavy.tflite",
}
LANDMARK_MODEL = LANDMARK_MODELS["full"]
# One interpreter thread: workers scale by processes (one model per process), and two
# threads per interpreter on a 2-core machine only make concurrent workers fight.
INTERPRETER_THREADS = 1

# --- detector (graph: PoseDetectionCpu) ---
DETECTOR_INPUT_PX = 224  # square input; the frame is letterboxed into it (keep_aspect_ratio)
DETECTOR_RANGE = (-1.0, 1.0)  # pixel 0..255 maps to this; letterbox pixels are 0 (so -1)
ANCHOR_STRIDES_PX = (8, 16, 32, 32, 32)  # SSD layers; equal strides share one grid
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 plus the interpolated scale (also 1.0): fixed size
ANCHOR_OFFSET = 0.5  # anchor centres sit mid-cell
N_ANCHORS = 2254  # 28*28*2 + 14*14*2 + 7*7*6
DETECTOR_COORDS = 12  # box cx, cy, w, h, then 4 keypoints x, y; in input pixels from the anchor
N_DETECTOR_KEYPOINTS = 4  # 0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder, 3 upper-body point
SCORE_CLIP = 100.0  # raw scores are clipped to +-this before the sigmoid
NMS_MIN_IOU = 0.3  # weighted NMS merges boxes (face boxes) overlapping more than this
# Region of interest from a detection or from the previous frame's landmarks (graph:
# AlignmentPointsRectsCalculator + RectTransformationCalculator): centre on the first point,
# side twice its distance to the second, turned so that the vector points up, then x1.25.
ROI_TARGET_ANGLE_RAD = math.pi / 2
ROI_SCALE = 1.25

# --- landmark model (graph: PoseLandmarkByRoiCpu) ---
LANDMARK_INPUT_PX = 256
LANDMARK_RANGE = (0.0, 1.0)
N_MODEL_LANDMARKS = 39  # 33 pose landmarks, 2 auxiliary (ROI for the next frame), 4 unused
LANDMARK_VALUES = 5  # x, y, z (input pixels), visibility logit, presence logit
N_POSE_LANDMARKS = N_LANDMARKS
AUX_LANDMARKS = (33, 34)  # alignment centre and size/rotation point of the next ROI
# Refinement window (heatmap cells) around each landmark. The graph's option says 7, but the
# wheel's landmarks match a 9-cell window (the option's default): on a test frame, 9 puts every
# refined landmark within 0.02 cells of mp.solutions.pose's, 7 leaves them up to 0.25 cells off.
HEATMAP_KERNEL = 9
HEATMAP_MIN_CONFIDENCE = 0.5  # refine only where the heatmap's peak in the window reaches this

# --- ROI tracking from landmarks (graph: PoseLandmarkFiltering, always on for the ROI) ---
# 1-euro filter on the two auxiliary landmarks, derivative scaled by the body's size.
ROI_FILTER_MIN_CUTOFF_HZ = 0.01
ROI_FILTER_BETA = 10.0
ROI_FILTER_DERIVATIVE_CUTOFF_HZ = 1.0
# MediaPipe's solution API steps its clock 1/30 s per frame whatever the video's rate; the
# ROI filter here does the same, so both backends crop the next frame alike.
ROI_FILTER_RATE_HZ = 30.0

# --- several people (this backend's own) ---
# People posed per frame at most. The landmark model costs ~10-15 ms a person on one core
# (bench/multi_pose.py): 12 people already take a 2-core machine below 10 analysed frames/s.
MAX_PEOPLE = 12
# BlazePose's detector was trained to find the main person: in a frame with several it gives
# one or two a high score and the rest little or nothing. So after the whole frame, it is run
# again on the vertical strips of the frame that nobody found so far occupies (left of, between
# and right of their bodies), where each remaining person is the main one; repeated while it
# finds someone new, at most this many rounds on a fresh start (first frame of a chunk, or
# nobody followed) and one round on a periodic re-detection.
SWEEP_ROUNDS = 3
REDETECT_ROUNDS = 1
# A detection in a strip must score at least this (MediaPipe's own default threshold), even
# when the whole-frame threshold is lower: strips are cut from the scenery around people, and
# at 0.3 the detector sees people in drums, wall shields and mannequins there (dance clip).
STRIP_MIN_SCORE = 0.5
# A strip narrower than this fraction of the frame's height cannot hold a body's face and
# torso; it is not searched.
MIN_STRIP_FRACTION = 0.1
# The landmarks that say which columns a person occupies: face, shoulders and hips (not the
# limbs, which reach over neighbours).
OCCUPIED_LANDMARKS = (NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)
# The detector runs again, when people are followed, every this many frames (at 10 analysed
# frames/s every 0.5 s) to find people who came into view, and in the frame after anyone
# followed was lost.
REDETECT_EVERY_FRAMES = 5
# A new detection's region is re-derived this many times from its own landmarks before it is
# compared with the people already found (the detector's region is coarse; the landmarks'
# region is the one tracking converges to, so duplicates show as duplicates).
NEW_PERSON_REFINEMENTS = 0
# A detection whose mid-hip and mid-shoulder keypoints lie, on average, within this fraction
# of a posed person's region side of that person's mid-hip and mid-shoulder is that person: it
# is not posed again (a detection's keypoints are coarser than landmarks, hence twice the
# duplicate rule's tolerance, still below the ~0.4 of a side between two people's torsos).
SAME_PERSON_TORSO_FRACTION = 0.2
DETECTOR_MID_HIP = 0
DETECTOR_MID_SHOULDER = 2
HIP_LANDMARKS = (L_HIP, R_HIP)
SHOULDER_LANDMARKS = (L_SHOULDER, R_SHOULDER)
# Two poses are one body found twice when their nose, shoulders and hips lie, in the median,
# within this fraction of the smaller region's side of each other (two people side by side are
# at least a shoulder width, ~0.2 of the side, apart); the one found later is dropped.
DUPLICATE_ANCHOR_FRACTION = 0.1
ANCHOR_LANDMARKS = (NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)
# Two people never share a head: noses closer than this fraction of the smaller region's side
# (a quarter of a head's width) are one body, however the rest was read (a raised arm read as a
# second body hanging from the same head). On the dance clip two different people's noses are
# never closer than 0.4 of the side.
SAME_HEAD_FRACTION = 0.05
# A pose whose torso centre lies inside a larger pose's torso, or inside the outline of a pose
# more than 1/NESTED_MAX_SIZE_RATIO times its size, is the landmark model seeing a person in
# part of a body (a raised arm, a hand, a shirt's pattern, cut out by a strip): dropped. A
# real person that much farther away, behind someone's outline, is hidden by them anyway.
TORSO_LANDMARKS = (L_SHOULDER, R_SHOULDER, R_HIP, L_HIP)  # polygon order
NESTED_MAX_SIZE_RATIO = 0.6
