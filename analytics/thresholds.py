"""Every tunable number of the analytics, with its unit and the reason for its value.

Thresholds are in body-relative units (torso lengths, degrees, seconds), never pixels, and
are chosen from how bodies move, not fitted to particular clips: docs/analytics.md gives
the reasoning for each.
"""

# --- landmarks
# A landmark below this visibility is treated as not seen: MediaPipe still places it, but
# by guessing, and an angle through a guessed joint is noise.
VISIBLE = 0.5

# --- smoothing (1€ filter; positions in image heights, world landmarks in metres)
# 1.5 Hz at rest removes MediaPipe's frame-to-frame jitter; beta lets the cutoff rise with
# speed so a fast movement is followed within one or two frames at 10 fps.
SMOOTH_MIN_CUTOFF_HZ = 1.5
SMOOTH_BETA = 0.5
SMOOTH_DERIVATIVE_CUTOFF_HZ = 1.0

# --- per-run defaults (overridable by settings)
# A fallen person still down this long is reported again (long_lie): long enough that a
# person who can get up has done so, short enough to matter (lying long after a fall is the
# harm falls detection exists to catch).
LONG_LIE_AFTER_S = 30.0

# --- tracks
# How long a person may be unseen before their track ends (overridable per run).
TRACK_LOST_AFTER_S = 1.5
# Torso length (mid-shoulder to mid-hip) of MediaPipe's world skeleton, which has about the
# same size for everyone (0.47-0.50 m on standing people in the shared clips): converts the
# world fit's image-heights-per-metre into torso lengths.
WORLD_TORSO_M = 0.5
# The body's size is the median of this many frames' fits: MediaPipe's world skeleton
# glitches for a frame or two (mostly when tracking restarts), the median ignores that.
TRACK_TORSO_MEDIAN_FRAMES = 5
# Fastest plausible movement of the body's median landmark, in torso lengths per second.
# Walking is ~3 (1.5 m/s); the fastest is a fall, whose upper body reaches ~4 m/s (8) just
# before impact, and when the legs are hidden the median is an upper-body point. A switch
# to another person moves every landmark at once by the distance between the two people.
TRACK_MAX_BODY_SPEED_TORSO_PER_S = 8.0
# Allowed on top at any interval: landmark noise, a stuttering video (a frame repeated,
# then a jump), and MediaPipe lagging behind a fast movement and catching up in one frame
# (seen up to ~1.2 torso lengths within 0.06 s in a fall toward the camera).
TRACK_MIN_JUMP_TORSO = 0.8
# A body's size in the image changes only with its distance to the camera: by a factor of
# at most ~2 per second even close to a lens. The floor is wide because MediaPipe's world
# skeleton can misjudge one frame by up to ~2.4x (seen when tracking restarts on a person
# lying down); movement, not size, is what catches most switches.
TRACK_MAX_SCALE_RATIO = 2.5
TRACK_MAX_SCALE_RATE_PER_S = 2.0
# Below this pose score (the backend's confidence: torso visibility, or the multi backend's
# presence times it) a pose may continue a track but never start one, and is matched only after
# the confident poses (ByteTrack's two-stage association). Half a torso seen is the line.
TRACK_NEW_MIN_SCORE = 0.5

# --- falls (analytics/falls.py; docs/analytics.md gives the reasoning at length)
# Heights and speeds are in torso lengths (WORLD_TORSO_M = 0.5 m, so 1 torso length/s is
# 0.5 m/s); the trunk's "rise" is how far the shoulders are above the hips, in torso lengths.
#
# Trunk upright and trunk down. Rise 0.6 is a trunk within ~55 deg of vertical: standing,
# walking, sitting, slouching forward on a seat. Rise 0.5 is ~60 deg or more from vertical,
# or a torso pointing at the camera: lying, in any direction.
FALL_UPRIGHT_RISE = 0.6
FALL_DOWN_RISE = 0.5
# Longest time from the last upright moment to the trunk down. Falls take 0.4-1 s; 2 s
# leaves room for knees buckling first or a slide off a chair; slower is lying down.
FALL_MAX_DURATION_S = 2.0
# The centre of mass's peak speed must come at most this long after the trunk first reads
# down: bodies land as the trunk tips (forward onto the hands, backward onto the seat and
# then the back), so the fast part of a fall is over within a few frames of the trunk
# going down. A fast "drop" while lying is a landmark jump.
FALL_PEAK_AFTER_DOWN_S = 0.5
# Samples kept per track: a whole fall plus the second before it (its starting height).
FALL_HISTORY_S = 4.0
# Speeds are measured over the shortest span of at least this: 2 frames at 10 fps, 3 at 15.
# One frame is too noisy; a longer span averages a fall's peak away. Across a gap in the
# poses longer than the max span there is no speed (an average over it means little).
FALL_SPEED_SPAN_S = 0.2
FALL_SPEED_MAX_SPAN_S = 0.6
# Moving down faster than this (0.25 m/s) is descending: slower than any part of a fall,
# faster than sway or breathing. It marks the fall's onset and its landing.
FALL_ONSET_SPEED_TORSO_PER_S = 0.5
# A fall is gravity winning: the centre of mass's peak downward speed must reach this
# fraction of the speed of a free fall from its starting height above the feet,
# sqrt(2 g h). Measured (smoothed, projected, 10 fps) speeds read low: most shared falls
# reach 0.25-0.60; getting down on the floor, kneeling, lying down prone reach 0.20 at most.
# A body toppling (turning about its feet or knees) brings the head down faster than the
# centre, about in proportion to their heights; someone lowering themselves on purpose keeps
# the head over the hips and slow (0.15-0.23 of the head's free fall, against 0.23-0.32 for
# the soft falls). So a slower centre, down to the second number, still falls if the head's
# peak downward speed reaches the third as a fraction of free fall from the head's own
# starting height. All three fitted leaving one source out (bench.score_falls --loso,
# docs/analytics.md); the first ties from 0.24 to 0.26 and is kept at 0.24 so a collapse
# straight down, the head no faster than the centre, is not left to the toppling test.
FALL_MIN_FREEFALL_FRACTION = 0.24
FALL_MIN_TOPPLE_FREEFALL_FRACTION = 0.18
FALL_MIN_HEAD_FREEFALL_FRACTION = 0.22
GRAVITY_M_PER_S2 = 9.81
# The starting height is the most it was over this long before the descent (someone who
# slumps on a chair before sliding off still started from the seat), clamped to a seat's
# height (~1 torso length) to standing (~1.7): a misplaced ankle cannot make a slow
# descent count as a fall from a low seat.
FALL_START_LOOKBACK_S = 1.0
FALL_MIN_START_HEIGHT_TORSO = 0.9
FALL_MAX_START_HEIGHT_TORSO = 2.0
# ... but the pelvis itself must start above the feet by at least this (12 cm): sitting on
# the floor (a sit-up, a stretch) leaves it level with the ankles (0-0.15 torso lengths),
# with no height to fall from. A seat puts it ~0.9 up and standing ~1.6, though a camera
# high above foreshortens the legs (a ceiling camera reads 0.33-0.54 on a standing cook).
FALL_MIN_START_PELVIS_TORSO = 0.25
# How far the centre of mass must come down, as a fraction of its starting height: a fall
# ends on the floor (all of it, less if the person falls out of view); bending over to
# pick something up lowers it by about a third.
FALL_MIN_DROP_FRACTION = 0.4
# Most of a fall's drop that one frame may hold: a body takes 0.3 s or more to reach the
# ground, several frames at any analysis rate (MediaPipe catching up on a fast fall puts
# up to ~60 % in one frame). All of it between two frames is the tracker following someone
# else who was already down.
FALL_MAX_ONE_STEP_FRACTION = 0.8
# Across a gap in the poses (MediaPipe loses people mid-fall) the body had the time to fall,
# and a re-detection on the floor continues the fall if its centre of mass is within this of
# where it was: a fall carries the centre sideways by about its height above the feet (~2
# torso lengths), plus a stumbling step. Further is someone else.
FALL_REDETECT_MAX_SHIFT_TORSO = 2.5
# Sitting still on the floor (pelvis at most FALL_MAX_HIP_HEIGHT_FRACTION of its standing
# height, centre of mass slower than the onset speed) this long before the trunk goes down
# means the person was already down: lying back from there is not a fall. Half a second is
# a deliberate pause, longer than the bounce of a landing.
FALL_FLOOR_REST_S = 0.5
# Confirmation: down for this long after landing, with the pelvis at most this fraction of
# its height above the feet before the fall. A fall leaves the person on the ground for
# more than a second (a stumble or an exercise move is up again sooner); on the ground the
# pelvis is at 0-40 % (lying, sitting on the floor), bent over or kneeling it stays at 55 %+.
FALL_CONFIRM_S = 1.0
FALL_MAX_HIP_HEIGHT_FRACTION = 0.6
# Still down while the centre of mass has not come back up by half the drop, or the trunk
# is not upright (sitting up on the floor is still down).
FALL_STAYS_DOWN_FRACTION = 0.5
# Up (trunk upright and centre of mass back up) for this long means the person got up: a
# single upright frame can be a landmark glitch.
FALL_GETUP_S = 0.3
# Confidence factor for a fall reported because its track ended (the person left the frame
# or the video ended) before they were seen staying down.
FALL_TRACK_ENDED_CONFIDENCE = 0.8

# --- repetitions (analytics/reps/)
# Angles are joint angles (180 = straight) or trunk inclination (0 = upright, 90 = lying);
# distances are torso lengths. docs/analytics.md gives the reasoning at length.
#
# Visibility a landmark needs to drive a repetition. MediaPipe gives a limb hidden behind
# the body (the far arm in a side view) 0.1-0.6 while still placing it from the body's
# context, and a landmark out of the frame below ~0.1. A cycle only needs the limb to be
# followed: the far arm of an alternating side-view curl reads 0.15-0.3 through its whole
# curl and follows it (9 of 9 curls seen at 0.15, 6 at 0.3, where its rest went unseen).
# Fitted with REP_ZONE_FRACTION leaving one source out (17 of 18 folds chose 0.15).
# A guessed limb's noise is what REP_FRAGMENT_* and the range-relative zones absorb.
REP_MIN_VISIBILITY = 0.15
# Time the signal must spend in the peak zone, from its crossing in to its last crossing
# out (each interpolated between the samples either side of the threshold, also across a
# short loss of sight, so a top hidden behind the body still has a duration). A single
# wrong sample crosses in and out within one sampling interval and reads less than that
# (0.1 s at 10 fps), or 0 next to a sample at rest: measured on the shared clips, one-sample
# excursions of everyday movement read 0.00-0.10 s. The bound is that interval and no more:
# the fastest tempo to count, about 0.5 s a rep (issue 25), spends 0.1-0.2 s past the peak
# threshold, and a bound of 0.15 s lost a third of the shared clips' reps played twice as fast
# (`python -m bench.score_posed --tempo 0.5`: 19 of 35 exact with the exercise given, 24 now).
REP_MIN_PEAK_DWELL_S = 0.1
# Shortest and longest plausible repetition (the last sample at rest before it to the first
# back at rest). A 0.5 s rep spends ~40 % of its period at rest, so its cycle reads ~0.3 s;
# holding a bottom for more than ~10 s is a different activity (sitting, kneeling), not a
# repetition.
REP_MIN_DURATION_S = 0.25
REP_MAX_DURATION_S = 10.0
# A signal unseen for longer than this may have crossed both thresholds unseen: the cycle
# in progress is dropped (never guessed), and counting resumes with the next full cycle.
REP_MAX_GAP_S = 1.0
# Two cycles of the two arms (or legs) that overlap this much in time are one repetition
# done with both at once; less overlap means they alternate and each counts.
REP_SAME_REP_OVERLAP = 0.5
# A set (bout) ends when no repetition follows for this long: rest between sets is longer
# (30 s and more), while a pause inside a set, even to change grip, is a few seconds.
REP_SET_MAX_GAP_S = 5.0
#
# Counting from the motion's own range (analytics/reps/counting.py). The range of a signal is
# taken between these percentiles of its values over the analysis window: the extremes the
# body really reaches, robust to a few wrong samples (3 % of a 20 s window is 0.6 s).
REP_RANGE_LOW_PERCENTILE = 3.0
REP_RANGE_HIGH_PERCENTILE = 97.0
# The peak zone is the part of the range within this fraction of the peak extreme, the rest
# zone within it of the rest extreme; the middle 30 % is hysteresis. A repetition must travel
# at least the middle of its own range: a half curl or a half squat among full ones (which
# coaches do not count) stops short, a quarter squat set (every rep alike) still counts.
# Fitted with REP_MIN_VISIBILITY leaving one source out (18 repositories; docs/analytics.md):
# 17 of 18 folds chose (0.4, 0.15); left-out exact 29/35 (in-sample 30/35).
REP_ZONE_FRACTION = 0.4
# A movement smaller than this (degrees of the signal, p3-p97) is not a repetition at all:
# it is landmark noise, breathing or sway (a still joint reads 5-20 deg of range at 10 fps).
# Quarter squats still bend the knee ~40 deg, arms raised to shoulder height swing ~80 deg.
REP_MIN_RANGE_DEG = 25.0
# The range and recognition look at the last minute of a track: a set of 10 slow squats
# fits, and a new set after a long rest is judged on its own motion.
REP_ANALYSIS_WINDOW_S = 60.0
# Counting is redone this often (video time): cheap at 10 fps, prompt enough for a live view.
REP_ANALYSE_EVERY_S = 1.0
# A repetition is reported once it ended this long ago: by then the range and the exercise
# are judged on a few repetitions, not on the first one. Reps come this late on a live
# stream (all of them at the end of a shorter video or track).
REP_COMMIT_DELAY_S = 8.0
#
# Postures that let each signal be read (outside them the machine pauses).
# Standing exercises: trunk closer to upright than this. A squat or lunge leans forward up
# to ~45-50 deg at the bottom; curls and jumping jacks are done upright (a lean of 30 deg
# is already a bent-over row or a stumble).
LEGS_MAX_TRUNK_INCLINATION_DEG = 60.0
UPRIGHT_MAX_TRUNK_INCLINATION_DEG = 30.0
# Push-up: body closer to horizontal than to vertical, forearm within 60 deg of hanging
# straight down (cos 60 = 0.5): the hands are on the floor under the shoulders.
PUSHUP_MIN_TRUNK_INCLINATION_DEG = 45.0
PUSHUP_MIN_FOREARM_DOWN = 0.5
# Push-up: the body held in a line from shoulders through hips (hip angle ~180 in a plank,
# 155-170 on the knees); on hands and knees, crawling or reaching down it is ~90-130.
PUSHUP_MIN_HIP_DEG = 140.0
# Curl: the upper arm stays along the body (shoulder angle below this); with the arm
# raised, an elbow bend is a press, a wave or a phone call.
CURL_MAX_SHOULDER_DEG = 50.0
# Sit-up: knees not far below the hips (standing puts them a thigh, ~1 torso length,
# below; lying or sitting on the floor with bent knees puts them level or above).
SITUP_MIN_THIGH_RISE_TORSO = -0.5
#
# Jumping jack: feet apart at the peak. Jumping out puts the ankles ~1.5 torso lengths
# apart (about three hip widths), feet together are 0.2-0.4; 1.0 is a clear jump apart.
JUMPING_JACK_MIN_ANKLE_SPREAD_TORSO = 1.0
#
# Form checks (flags on a counted repetition).
# Squat depth: thighs about parallel puts the knee near 90-100 deg.
SQUAT_DEPTH_KNEE_MAX_DEG = 100.0
# Push-up: straight arms at the top (allowing ~25 deg of landmark error), elbows at or
# below ~90 deg (+10) at the bottom.
PUSHUP_LOCKOUT_ELBOW_MIN_DEG = 155.0
PUSHUP_DEPTH_ELBOW_MAX_DEG = 100.0
# Curl: arm (nearly) straight at the bottom; at the top a full curl brings the weight to
# the shoulder (elbow ~30-50 deg), while stopping above 70 deg is a half rep.
CURL_EXTENDED_ELBOW_MIN_DEG = 150.0
CURL_CONTRACTED_ELBOW_MAX_DEG = 70.0
# Jumping jack: arms overhead means both wrists above the head (the nose's height) at the peak.
JUMPING_JACK_MIN_WRIST_ABOVE_NOSE_TORSO = 0.0
# Lunge: the front knee at a right angle at the bottom, give or take the tolerance (the
# angle is estimated; from the front it reads 10-20 deg open).
LUNGE_FRONT_KNEE_TARGET_DEG = 90.0
LUNGE_FRONT_KNEE_TOLERANCE_DEG = 25.0
# Sit-up: trunk within this of upright at the top.
SITUP_REACH_TRUNK_INCLINATION_MAX_DEG = 20.0
#
# Recognition (analytics/reps/recognise.py; each cue's physical reason is there).
# The knees bend in a squat or lunge by 40 deg or more even at quarter depth; jumping jacks
# land on soft knees (10-25 deg) and curls and push-ups do not bend an upright body's knees.
RECOGNISE_LEGS_MIN_ROM_DEG = 40.0
# Lunge: the back knee drops toward the floor while the front one stays about a shin
# (~0.9 torso lengths) up; squatting knees are level within landmark noise. Upper quartile
# over each cycle's middle half, on the shared clips: lunges 0.40-0.89, squats 0.02-0.19.
RECOGNISE_LUNGE_MIN_KNEE_GAP_TORSO = 0.3
# Lateral lunge: one knee bends to ~90 deg while the other stays nearly straight (~80 deg
# apart); a squat bends both alike, up to ~35 deg apart when seen obliquely (one knee's
# plane faces the camera, the other's does not).
RECOGNISE_LUNGE_MIN_KNEE_ASYMMETRY_DEG = 50.0
# Jumping jack: the arms swing from the sides to at least shoulder height (~90 deg of
# shoulder angle); a curl's upper arm swings 10-30 deg at most.
RECOGNISE_JACK_MIN_SHOULDER_ROM_DEG = 60.0
# A full repetition's range of motion per exercise's signal (degrees), to weigh cycles
# against each other: knee 90 (to thighs parallel), elbow 90 (push-up to 90 deg; curl
# 170 -> 40 is more, capped), shoulder 150 (arms to overhead), trunk 60 (lying back to
# ~30 deg from upright).
RECOGNISE_FULL_ROM_DEG = {
    "squat": 90.0, "lunge": 90.0, "pushup": 90.0, "bicep_curl": 90.0, "jumping_jack": 150.0, "situp": 60.0,
}  # fmt: skip
#
# The tutorial counter (analytics/reps/baseline.py), a yardstick: the thresholds typical
# tutorials print for image-plane angles, not chosen here. Down past the first, up past the
# second counts one repetition.
BASELINE_SQUAT_DOWN_KNEE_DEG = 100.0
BASELINE_UP_DEG = 160.0
BASELINE_PUSHUP_DOWN_ELBOW_DEG = 90.0
BASELINE_CURL_UP_ELBOW_DEG = 50.0
BASELINE_CURL_DOWN_ELBOW_DEG = 150.0
BASELINE_SITUP_UP_HIP_DEG = 70.0
BASELINE_SITUP_DOWN_HIP_DEG = 110.0
# A curl bends the elbow from straight to past a right angle (~130 deg of flexion, ~70 for a
# half curl); arms swinging while walking or gesturing bend it 20-40 deg.
RECOGNISE_CURL_MIN_ROM_DEG = 60.0
# A guessed exercise (no cue fitted) needs the movement to repeat: one cycle of something
# unrecognised is everyday life (a reach, a stumble), not a set.
RECOGNISE_MIN_GUESSED_CYCLES = 2
# The lower knee at a squat's or lunge's bottom is bent (a lunge's back knee ~90 deg, a
# quarter squat's ~135); a knee lift leaves the lower, standing leg straight (>= ~165).
RECOGNISE_LOWER_KNEE_MAX_DEG = 140.0
# A cycle shorter than this fraction of the set's median one, meeting its neighbour within
# REP_FRAGMENT_MAX_REST_S, is a piece of that neighbour (a guessed limb read one rep as two):
# a body keeps a steady tempo within a set (tempo changes of 30-50 % between reps, not 2x).
REP_FRAGMENT_FRACTION = 0.5
REP_FRAGMENT_MAX_REST_S = 0.3
# Standing again after a squat or lunge puts the knees ~0.8-1 torso lengths (a thigh) below
# the hips; sitting or lying with the legs out keeps them level (~0). Half way is the line.
RECOGNISE_STANDING_MAX_THIGH_RISE_TORSO = -0.5
# A curl lifts the weight: at the top the forearm is past horizontal with the upper arm
# hanging, elbow at most ~90 deg (full curls 40-70 on the shared clips). Carrying a bag or
# leaning on a table bends it to 100-120 deg.
RECOGNISE_CURL_MAX_PEAK_ELBOW_DEG = 90.0
# A lone repetition, recognised automatically: the body stays in the exercise's posture
# (its signal readable) on nearly every frame seen, and the rep goes through most of a full
# range. Single reps of the shared exercise clips: posture 1.00 of the frames, 0.9-1.4 of a
# full range; everyday postures passed through once (picking up, crouching, collapsing,
# lying back): 0.36-0.98 and 0.4-1.5.
RECOGNISE_SINGLE_MIN_POSTURE_FRACTION = 0.95
RECOGNISE_SINGLE_MIN_FULL_ROM_FRACTION = 0.8
# ... measured over the window's time, not only the frames seen: a step between frames over
# 2.5 times the usual one is time the person was unseen (a rate resampled from another, e.g.
# 25 fps at 7.5, jitters by 1.33x; one dropped frame doubles a step).
REP_SEEN_MAX_STEP_RATIO = 2.5
# Automatic mode, per cycle (analytics/reps/plausible.py). An exercise set is done in place:
# curls, jumping jacks, push-ups and sit-ups end a rep where it began (mid-hip moved at most
# 0.49 torso lengths over a rep on the shared clips); walking covers ~2.5 torso lengths (1.3
# m/s) a second, at least one in the shortest rep. Half a metre is a step taken.
REP_MAX_TRAVEL_TORSO = 1.0
# A curl's feet stay planted: a foot seen well moves only by landmark noise (at most 0.02 torso
# lengths over the counted curls of the shared clips), while the shortest step moves it ~25 cm
# (0.5 torso lengths; the walking clips' arm swings read 0.4-1.2). Half a short step.
CURL_MAX_FEET_TRAVEL_TORSO = 0.25
# A sit-up folds the trunk onto the thighs: at its top the hip angle is well under 90-100
# (23-101 on the shared clips, decline and crunch-like ones included); a trunk that rises
# over an open hip (>= ~140) is a body standing or kneeling up, not sitting up.
SITUP_MAX_PEAK_HIP_DEG = 120.0
# A squat or lunge lowers the body by folding the hip about as far as the knee (the trunk
# leans forward to keep the weight over the feet): a quarter squat's 40 deg of knee flexion
# comes with 40 or more at the hip (the less bent hip at the bottom 28-123 deg on the shared
# clips). Knees bending under an extended hip (~160) is a step or a sway, not going down.
LEGS_MAX_BOTTOM_HIP_DEG = 140.0
