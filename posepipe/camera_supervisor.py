"""The camera supervisor in `posepipe ingest`: a reader thread per enabled camera, reloaded from the database.

Each camera runs a live session: a `videos` row whose t = 0 is the session's wall-clock
start, its frames queued by pipeline.live, a STREAM_GAP event for every interruption, and a
final job that flushes its analytics when the camera stops. Adding, changing or removing a
camera takes effect within CAMERA_POLL_S without a restart. Status (state, rates, drops,
reconnects, last error with passwords masked) is written for every camera every
STATUS_INTERVAL_S. One camera's trouble never blocks another: each has its own thread and
its own reader with timeouts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import cast

from analytics.events import Event, EventType
from pipeline import keys
from pipeline.live import LiveIngest, LivePlan
from pipeline.stream import CameraStream, LiveFrame, StreamGap
from pose.estimator import pose_spec
from posepipe.settings import Settings
from storage import cameras, events, videos
from storage.cameras import CameraConfig, StatusReport
from storage.models import CameraState, Source, Video, VideoStatus
from storage.secret_box import SecretBox
from workers.context import WorkerContext

log = logging.getLogger(__name__)

CAMERA_POLL_S = 2.0
STATUS_INTERVAL_S = 2.0


def session_pose_spec(config: CameraConfig, settings: Settings) -> str:
    """What a camera's sessions are posed with: the camera's backend with this deployment's
    BlazePose model, and hands when the camera asks for them or the deployment turns them on
    everywhere (POSEPIPE_HANDS)."""
    return pose_spec(config.pose_backend, settings.pose_model, config.hands or settings.hands)


@dataclass
class CameraRunner:
    """One camera's session: its reader thread and what it has counted."""

    config: CameraConfig
    ctx: WorkerContext
    settings: Settings  # the deployment's: live chunking, the BlazePose model, hands
    stop: threading.Event = field(default_factory=threading.Event)
    video_id: int | None = None
    run: str | None = None
    live: LiveIngest | None = None
    stream: CameraStream | None = None
    gaps: int = 0
    _thread: threading.Thread | None = None
    _last_done: tuple[float, int] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.config.name}", daemon=True)
        self._thread.start()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        cfg = self.config
        session_start = time.time()
        self.video_id, self.run = self._open_session(session_start)
        plan = LivePlan(
            video_id=self.video_id,
            run=self.run,
            fps=cfg.fps,
            chunk_frames=self.settings.live_chunk_frames,
            chunk_max_wait_s=self.settings.live_chunk_max_wait_s,
            chunk_max_frames=self.settings.live_chunk_max_frames,
            max_queued_bytes=int(self.settings.live_max_queued_mb * 1e6),
            frame_max_side=self.settings.frame_max_side,
            session_start_s=session_start,
        )
        self.live = LiveIngest(plan, self.ctx.frames, self.ctx.queue)
        flusher = threading.Thread(target=self._flush_on_time, name=f"camera-{cfg.name}-flush", daemon=True)
        flusher.start()
        self.stream = CameraStream(cfg.name, cfg.url, stop=self.stop)
        sized = False
        try:
            for item in self.stream.frames():
                if isinstance(item, StreamGap):
                    self.live.flush()
                    self._record_gap(item, session_start)
                    continue
                if not sized:
                    sized = self._record_size(item)
                self.live.offer(item.av_frame, item.captured_at_s)
        finally:
            self.live.flush()
            self.ctx.queue.enqueue_live_finish(self.video_id, self.run)

    def _flush_on_time(self) -> None:
        # A chunk waiting when the camera falls silent goes out on time, not after the outage.
        period = self.settings.live_chunk_max_wait_s / 2
        while not self.stop.wait(period):
            if self.live is not None:
                self.live.flush_if_due(time.time())

    def _open_session(self, session_start: float) -> tuple[int, str]:
        spec = session_pose_spec(self.config, self.settings)
        with self.ctx.db.session() as session:
            source = session.get(Source, self.config.source_id)
            video = Video(
                source=source,
                path=self.config.url_masked,
                sha256=None,
                size_bytes=None,
                params_key=f"live;fps={self.config.fps:g};backend={spec}",
                fps_target=self.config.fps,
                pose_backend=spec,
                exercise=self.config.exercise,
                status=VideoStatus.RUNNING,
                run_token=videos.new_run_token(),
                started_at=datetime.fromtimestamp(session_start, timezone.utc),
            )
            session.add(video)
            session.flush()
            log.info("camera=%s session video=%s started", self.config.name, video.id)
            return video.id, video.run_token

    def _record_size(self, frame: LiveFrame) -> bool:
        with self.ctx.db.session() as session:
            video = session.get(Video, self.video_id)
            if video is not None:
                rotated = int(frame.av_frame.rotation or 0) % 180 != 0
                w, h = frame.av_frame.width, frame.av_frame.height
                video.width, video.height = (h, w) if rotated else (w, h)
        return True

    def _record_gap(self, gap: StreamGap, session_start: float) -> None:
        self.gaps += 1
        event = Event(
            type=EventType.STREAM_GAP,
            t_start_s=max(0.0, gap.started_at_s - session_start),
            t_end_s=max(0.0, gap.ended_at_s - session_start),
            track_id=None,
            confidence=1.0,
            data={
                "cause": gap.cause.value,
                "reason": gap.reason,
                "reconnects": gap.reconnects,
                "duration_s": round(gap.duration_s, 3),
            },
        )
        with self.ctx.db.session() as session:
            video = session.get(Video, self.video_id)
            origin = video.started_at if video is not None else None
            events.add_events(session, self.video_id, self.config.source_id, [event], origin)
        log.warning(
            "camera=%s no frames for %.1f s (%s)",
            self.config.name,
            gap.duration_s,
            gap.cause.value,
        )

    def report(self) -> StatusReport:
        """The camera's status now: the reader's view, queueing counters and worker drops."""
        st = self.stream.status() if self.stream is not None else None
        dropped: Counter[str] = Counter(self.live.dropped if self.live else {})
        fps_analyzed = None
        if self.video_id is not None:
            raw = cast("dict[bytes, bytes]", self.ctx.redis.hgetall(keys.live_drops(self.video_id)))
            dropped.update({k.decode(): int(v) for k, v in raw.items()})
            fps_analyzed = self._analysed_rate()
        state = CameraState(st.state.value) if st is not None else CameraState.CONNECTING
        if self.stop.is_set():
            state = CameraState.OFFLINE
        return StatusReport(
            state=state,
            session_video_id=self.video_id,
            last_frame_at=datetime.fromtimestamp(st.last_frame_at_s, timezone.utc)
            if st is not None and st.last_frame_at_s
            else None,
            fps_in=st.fps_measured if st is not None else None,
            fps_analyzed=fps_analyzed,
            frames_in=self.live.frames_in if self.live else 0,
            frames_queued=self.live.frames_queued if self.live else 0,
            dropped=dict(dropped),
            reconnects=st.reconnects if st is not None else 0,
            last_error=st.last_error if st is not None else None,
        )

    def _analysed_rate(self) -> float | None:
        with self.ctx.db.session() as session:
            video = session.get(Video, self.video_id)
            done = video.frames_done if video is not None else 0
        now = time.monotonic()
        previous, self._last_done = self._last_done, (now, done)
        if previous is None or now - previous[0] <= 0:
            return None
        return round((done - previous[1]) / (now - previous[0]), 2)


class CameraSupervisor:
    """Keeps one CameraRunner per enabled camera in the database, and writes their status."""

    def __init__(self, ctx: WorkerContext, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.runners: dict[int, CameraRunner] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="camera-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for runner in self.runners.values():
            runner.shutdown()
        for camera_id, runner in self.runners.items():
            self._report(camera_id, runner)
        self.runners.clear()

    def _loop(self) -> None:
        box = SecretBox.from_settings(self.settings.secret_key, self.settings.data_dir)
        last_status = 0.0
        while not self._stop.is_set():
            try:
                self._reconcile(box)
                if time.monotonic() - last_status >= STATUS_INTERVAL_S:
                    last_status = time.monotonic()
                    for camera_id, runner in list(self.runners.items()):
                        self._report(camera_id, runner)
            except Exception:  # noqa: BLE001  the supervisor outlives a database blip; it retries next round
                log.exception("camera supervisor round failed; retrying")
            self._stop.wait(min(CAMERA_POLL_S, STATUS_INTERVAL_S))

    def _reconcile(self, box: SecretBox) -> None:
        with self.ctx.db.session() as session:
            wanted = {c.id: c for c in cameras.enabled_configs(session, box)}
        for camera_id in list(self.runners):
            runner = self.runners[camera_id]
            changed = camera_id in wanted and wanted[camera_id].updated_at != runner.config.updated_at
            if camera_id not in wanted or changed or not runner.alive:
                log.info(
                    "camera=%s stopping (%s)",
                    runner.config.name,
                    "removed" if camera_id not in wanted else "changed" if changed else "reader ended",
                )
                runner.shutdown()
                self._report(camera_id, runner)
                del self.runners[camera_id]
        for camera_id, config in wanted.items():
            if camera_id not in self.runners:
                runner = CameraRunner(config, self.ctx, self.settings)
                self.runners[camera_id] = runner
                runner.start()
                log.info("camera=%s started (%s)", config.name, config.url_masked)

    def _report(self, camera_id: int, runner: CameraRunner) -> None:
        with self.ctx.db.session() as session:
            cameras.report_status(session, camera_id, runner.report())
