"""Prometheus metrics at `/metrics`, computed at scrape time from the database and Redis (none kept here).

Cameras: input and analysed fps, frames in and dropped by cause, reconnects, pose inference
time per frame; videos by status; webhook deliveries by state; the MQTT bridge's backlog;
recent inference time per frame over all workers; and, with REDIS_URL, the queues' depth,
running and failed jobs and the workers RQ knows. Several API processes report the same
numbers (they are read from the shared stores), so scrape one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from pipeline import keys
from posepipe.api.state import ApiState
from storage import event_feed, webhooks
from storage.cameras import list_cameras
from storage.models import Chunk, Video, VideoStatus, utcnow

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Inference time is averaged over the pose chunks finished in this window.
RECENT_INFERENCE = timedelta(minutes=5)
QUEUES = (keys.QUEUE_LIVE, keys.QUEUE_ANALYTICS, keys.QUEUE_POSE, keys.QUEUE_SEGMENT, keys.QUEUE_INGEST)


class PosepipeCollector(Collector):
    def __init__(self, api: ApiState) -> None:
        self.api = api

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("posepipe_database_up", "1 if the database answered this scrape.")
        try:
            database = list(self._database())
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            database = []
        up.add_metric([], 1 if database else 0)
        yield up
        yield from database
        yield from self._redis()
        analysis = self.api.analyses.process_alive
        if analysis is not None:
            gauge = GaugeMetricFamily(
                "posepipe_api_analysis_process_up",
                "Without REDIS_URL: 1 while the API's analysis process runs.",
            )
            gauge.add_metric([], 1 if analysis else 0)
            yield gauge

    def _database(self) -> Iterator[Metric]:
        cam = "camera"
        fps_in = GaugeMetricFamily(
            "posepipe_camera_fps_in", "Frames per second the camera delivers.", labels=[cam]
        )
        fps_an = GaugeMetricFamily(
            "posepipe_camera_fps_analyzed", "Frames per second analysed.", labels=[cam]
        )
        online = GaugeMetricFamily("posepipe_camera_up", "1 while the camera is online.", labels=[cam])
        frames = CounterMetricFamily("posepipe_camera_frames_in", "Frames read this session.", labels=[cam])
        dropped = CounterMetricFamily(
            "posepipe_camera_frames_dropped",
            "Frames not analysed this session, by cause.",
            labels=[cam, "cause"],
        )
        reconnects = CounterMetricFamily(
            "posepipe_camera_reconnects", "Reconnections this session.", labels=[cam]
        )
        inference = GaugeMetricFamily(
            "posepipe_camera_inference_ms", "Mean pose inference time per frame this session.", labels=[cam]
        )
        with self.api.db.session() as session:
            for camera, status in list_cameras(session):
                name = [camera.name]
                online.add_metric(name, 1 if status is not None and status.state.value == "online" else 0)
                if status is None:
                    continue
                if status.fps_in is not None:
                    fps_in.add_metric(name, status.fps_in)
                if status.fps_analyzed is not None:
                    fps_an.add_metric(name, status.fps_analyzed)
                frames.add_metric(name, status.frames_in)
                reconnects.add_metric(name, status.reconnects)
                for cause, count in sorted((status.dropped or {}).items()):
                    dropped.add_metric([camera.name, str(cause)], int(count))
                if status.session_video_id is not None:
                    video = session.get(Video, status.session_video_id)
                    if video is not None and video.frames_done:
                        inference.add_metric(name, 1000.0 * video.pose_s / video.frames_done)
            by_status = dict(session.execute(select(Video.status, func.count()).group_by(Video.status)).all())
            deliveries = webhooks.delivery_counts(session)
            since = utcnow() - RECENT_INFERENCE
            pose_s, posed = session.execute(
                select(func.sum(Chunk.pose_s), func.sum(Chunk.seq_to - Chunk.seq_from)).where(
                    Chunk.finished_at >= since
                )
            ).one()
        yield from (fps_in, fps_an, online, frames, dropped, reconnects, inference)
        videos = GaugeMetricFamily(
            "posepipe_videos", "Videos and camera sessions by status.", labels=["status"]
        )
        for video_status in VideoStatus:
            videos.add_metric([video_status.value], int(by_status.get(video_status, 0)))
        yield videos
        hooks = GaugeMetricFamily(
            "posepipe_webhook_deliveries", "Webhook deliveries by state.", labels=["state"]
        )
        for state, delivered in deliveries.items():
            hooks.add_metric([state.value], delivered)
        yield hooks
        with self.api.db.session() as session:
            backlogs = event_feed.cursor_backlogs(session)
        behind = GaugeMetricFamily(
            "posepipe_event_consumer_backlog",
            "Events stored past a durable consumer's cursor (the MQTT bridge: mqtt:<prefix>).",
            labels=["consumer"],
        )
        for consumer, backlog in backlogs:
            behind.add_metric([consumer], backlog)
        yield behind
        recent = GaugeMetricFamily(
            "posepipe_inference_ms",
            f"Mean pose inference time per frame, chunks of the last {RECENT_INFERENCE.seconds // 60} min.",
        )
        if posed:
            recent.add_metric([], 1000.0 * float(pose_s or 0.0) / int(posed))
        yield recent

    def _redis(self) -> Iterator[Metric]:
        if self.api.services.embedded:
            return  # the embedded queue lives inside the analysis process; nothing shared to report
        up = GaugeMetricFamily("posepipe_redis_up", "1 if Redis answered this scrape.")
        depth = GaugeMetricFamily("posepipe_queue_depth", "Jobs waiting in each queue.", labels=["queue"])
        running = GaugeMetricFamily("posepipe_jobs_running", "Jobs being run, by queue.", labels=["queue"])
        failed = GaugeMetricFamily(
            "posepipe_jobs_failed",
            "Failed jobs kept (7 days) in each queue's failed registry.",
            labels=["queue"],
        )
        workers = GaugeMetricFamily("posepipe_workers", "RQ workers alive (pose, analytics and ingest).")
        redis = self.api.services.redis
        try:
            for name in QUEUES:
                queue = Queue(name, connection=redis)
                depth.add_metric([name], queue.count)
                running.add_metric([name], StartedJobRegistry(queue=queue).count)
                failed.add_metric([name], FailedJobRegistry(queue=queue).count)
            workers.add_metric([], Worker.count(connection=redis))
        except RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from (up, depth, running, failed, workers)


def render(api: ApiState) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PosepipeCollector(api))
    return generate_latest(registry)
