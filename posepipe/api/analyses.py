"""Analysing uploaded videos: queued for the ingester with Redis, else run by the API's analysis process.

With REDIS_URL an upload is registered and queued exactly as `posepipe enqueue` does it
(`posepipe ingest` decodes it, `posepipe worker`s pose it). Without Redis the API needs no
other server: it plans each upload itself (posepipe.analyze.plan registers the video and
gives its id at once) and hands it to one analysis process it spawns, which runs it with
posepipe.analyze.run, in embedded mode like `posepipe analyze` (its own in-process queue
and pose worker threads), one upload after another. MediaPipe in a child process keeps the
API responsive and lets a shutdown stop an analysis at once; uploads left unfinished by a
shutdown or a crash are started again when the API next starts.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pose.estimator import pose_spec
from posepipe import analyze as analysis
from posepipe.services import Services
from posepipe.settings import Settings
from storage import videos
from storage.models import Video, VideoStatus

log = logging.getLogger(__name__)

# How often the API checks on its analysis process (died? which uploads finished?).
WATCH_INTERVAL_S = 2.0
# A stopping API gives its analysis process this long to exit after SIGTERM, then kills it.
STOP_TIMEOUT_S = 10.0
UNFINISHED = (VideoStatus.QUEUED, VideoStatus.RUNNING)


@dataclass(frozen=True)
class Submission:
    """One planned upload for the analysis process."""

    target: analysis.Target
    options: analysis.AnalyzeOptions


def analysis_process(settings: Settings, inbox: multiprocessing.queues.Queue) -> None:
    """The analysis process: run each submitted upload to completion, in order."""
    from posepipe.logs import filter_native_noise, setup_logging

    filter_native_noise()
    setup_logging(settings.log_level)
    services = Services.open(settings)
    try:
        while (item := inbox.get()) is not None:
            _run_one(services, item)
    finally:
        services.close()


def _run_one(services: Services, item: Submission) -> None:
    video_id = item.target.video_id
    try:
        analysis.run(services, [item.target], item.options)
    except Exception as exc:  # noqa: BLE001  one upload's crash must not stop the uploads after it
        log.exception("video=%s analysis crashed", video_id)
        with services.db.session() as session:
            videos.mark_failed(session, video_id, item.target.run or "", f"analysis crashed: {exc!r}")  # type: ignore[arg-type]


class UploadAnalyses:
    """Starts the analysis of uploaded files (see the module docstring)."""

    def __init__(self, services: Services, uploads_dir: Path) -> None:
        self.services = services
        self.settings = services.settings
        self.uploads_dir = uploads_dir
        self._mp = multiprocessing.get_context("spawn")
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._inbox: multiprocessing.queues.Queue | None = None
        # Videos handed to the current analysis process and not known to be finished.
        self._assigned: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="posepipe-analyses", daemon=True)

    @property
    def embedded(self) -> bool:
        return self.services.embedded

    def start(self) -> None:
        if not self.embedded:
            return
        self._resume_unfinished()
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                log.warning("analysis process pid=%s did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.join()
        if self._watcher.is_alive():
            self._watcher.join(WATCH_INTERVAL_S + 1)

    @property
    def process_alive(self) -> bool | None:
        """None with Redis (no analysis process); else whether it runs now."""
        if not self.embedded:
            return None
        return self._proc is not None and self._proc.is_alive()

    def submit(self, path: Path, sha256: str, options: analysis.AnalyzeOptions) -> analysis.Target:
        """Register the file's analysis and start it; the Target says what was done."""
        if not self.embedded:
            (target,) = analysis.enqueue(self.services, [str(path)], options)
            return target
        with self._lock:
            attached = self._running_here(path, sha256, options)
            if attached is not None:
                return attached
            target = analysis.plan(self.services, str(path), options)
            if target.action in analysis.PENDING_ACTIONS and target.video_id is not None:
                self._hand_over(target, options)
            return target

    def _running_here(
        self, path: Path, sha256: str, options: analysis.AnalyzeOptions
    ) -> analysis.Target | None:
        """The same content and parameters already being analysed by our process: attach to it
        (planning again would restart that run)."""
        settings = self.settings
        params = videos.AnalysisParams(
            options.fps,
            pose_spec(settings.pose_backend, settings.pose_model, settings.hands),
            settings.frame_max_side,
            settings.pose_min_confidence,
        )
        with self.services.db.session() as session:
            video = videos.find_reusable(session, sha256, params)
            if video is None or video.id not in self._assigned or video.status not in UNFINISHED:
                return None
            if options.force or video.exercise != options.exercise:
                return None
            alive = self._proc is not None and self._proc.is_alive()
            return (
                analysis.Target(str(path), analysis.Action.ATTACH, video.id, video.run_token, sha256)
                if alive
                else None
            )

    def _hand_over(self, target: analysis.Target, options: analysis.AnalyzeOptions) -> None:
        if self._proc is None or not self._proc.is_alive():
            self._spawn()
        assert self._inbox is not None
        self._assigned.add(target.video_id)  # type: ignore[arg-type]
        self._inbox.put(Submission(target, replace(options, workers=self.settings.api_analysis_workers)))

    def _spawn(self) -> None:
        if self._proc is not None:
            self._orphan(self._proc.exitcode)
        self._inbox = self._mp.Queue()
        self._proc = self._mp.Process(
            target=analysis_process, args=(self.settings, self._inbox), name="posepipe-analysis", daemon=True
        )
        self._proc.start()
        log.info("started the analysis process pid=%s", self._proc.pid)

    def _orphan(self, exitcode: int | None) -> None:
        """The analysis process died: its unfinished uploads fail with the reason."""
        if not self._assigned:
            return
        reason = f"the API's analysis process exited unexpectedly (exit code {exitcode})"
        with self.services.db.session() as session:
            for video in session.scalars(select(Video).where(Video.id.in_(self._assigned))):
                if video.status in UNFINISHED:
                    videos.mark_failed(session, video.id, video.run_token, reason)
                    log.error("video=%s failed: %s", video.id, reason)
        self._assigned.clear()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            try:
                with self._lock:
                    self._check()
            except SQLAlchemyError as exc:
                log.warning("cannot check on uploads being analysed (database: %s); retrying", exc)

    def _check(self) -> None:
        if self._assigned:
            with self.services.db.session() as session:
                finished = session.scalars(
                    select(Video.id).where(Video.id.in_(self._assigned), Video.status.not_in(UNFINISHED))
                ).all()
            self._assigned.difference_update(finished)
        if self._proc is not None and not self._proc.is_alive() and not self._stop.is_set():
            log.error("the analysis process pid=%s exited with %s", self._proc.pid, self._proc.exitcode)
            self._orphan(self._proc.exitcode)
            self._proc = None

    def _resume_unfinished(self) -> None:
        """Uploads a previous API process left queued or running are analysed again."""
        prefix = str(self.uploads_dir.resolve()) + "/"
        with self.services.db.session() as session:
            left = session.execute(
                select(Video.path, Video.sha256, Video.fps_target, Video.exercise).where(
                    Video.status.in_(UNFINISHED), Video.sha256.is_not(None), Video.path.startswith(prefix)
                )
            ).all()
        for path, sha256, fps, exercise in left:
            if sha256 is not None and Path(path).is_file():
                log.info("resuming the analysis of upload %s", Path(path).name)
                self.submit(Path(path), sha256, analysis.AnalyzeOptions(fps=fps, exercise=exercise))
