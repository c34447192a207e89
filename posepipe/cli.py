"""The `posepipe` command line. Results go to stdout; progress and logs to stderr."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import click

from analytics.events import Exercise
from pose.estimator import BACKENDS, POSE_MODELS
from posepipe import __version__
from posepipe.logs import filter_native_noise, setup_logging
from posepipe.settings import Settings, load_settings

if TYPE_CHECKING:
    from posepipe.services import Services

log = logging.getLogger("posepipe")

EXERCISES = click.Choice([e.value for e in Exercise])
POSE_BACKENDS = click.Choice(sorted(BACKENDS))
POSE_BACKEND_HELP = (
    "Pose backend: mediapipe+movenet (BlazePose, MoveNet where it lost the person; the default), "
    "mediapipe (one person), litert / litert+movenet (the same BlazePose graph run by LiteRT, without "
    "MediaPipe), multi (several people) or movenet (MoveNet MultiPose, up to 6 people; "
    "default: settings)."
)
POSE_MODEL_CHOICES = click.Choice(POSE_MODELS)
POSE_MODEL_HELP = "BlazePose landmark model of mediapipe and multi: lite, full or heavy (default: settings)."
HANDS_HELP = (
    "Also find each person's hands, 21 landmarks each, attached to the person whose wrist they "
    "meet (1.5-4x the cost of posing alone; default: POSEPIPE_HANDS, off)."
)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    setup_logging("WARNING" if ctx.obj.get("quiet") else settings.log_level)
    return settings


def _services(settings: Settings) -> Services:
    from posepipe.services import Services

    return Services.open(settings)


@click.group()
@click.version_option(__version__)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def main(ctx: click.Context, quiet: bool) -> None:
    """posepipe: watch people in video and turn what they do into queryable events."""
    filter_native_noise()
    ctx.ensure_object(dict)["quiet"] = quiet


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--fps", type=click.FloatRange(min=0), default=None, help="Analysis rate (default 10; 0 = every frame)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (schema in README).")
@click.option(
    "--workers", type=click.IntRange(min=0), default=None, help="Local workers to run for this command."
)
@click.option("--force", is_flag=True, help="Analyse again even if this content was analysed before.")
@click.option(
    "--exercise", type=EXERCISES, default=None, help="The exercise being done (default: recognise it)."
)
@click.option("--pose-backend", type=POSE_BACKENDS, default=None, help=POSE_BACKEND_HELP)
@click.option("--pose-model", type=POSE_MODEL_CHOICES, default=None, help=POSE_MODEL_HELP)
@click.option("--hands/--no-hands", default=None, help=HANDS_HELP)
@click.pass_context
def analyze(
    ctx: click.Context,
    files: tuple[str, ...],
    fps: float | None,
    as_json: bool,
    workers: int | None,
    force: bool,
    exercise: str | None,
    pose_backend: str | None,
    pose_model: str | None,
    hands: bool | None,
) -> None:
    """Analyse FILES (videos, photos, or folders of them) to completion and print a summary."""
    from posepipe import analyze as analysis
    from posepipe.progress import ProgressBar
    from posepipe.report import summary_lines, video_report
    from posepipe.views import SCHEMA_VERSION
    from storage.models import VideoStatus

    settings = _settings(ctx, analysis_fps=fps, pose_backend=pose_backend, pose_model=pose_model, hands=hands)
    services = _services(settings)
    options = analysis.AnalyzeOptions(
        fps=settings.analysis_fps, exercise=exercise, force=force, workers=workers
    )
    try:
        targets = [analysis.plan(services, f, options) for f in analysis.expand_folders(files)]
        busy = any(t.action in analysis.PENDING_ACTIONS for t in targets)
        with ProgressBar(enabled=busy and not ctx.obj.get("quiet")) as bar:
            analysis.run(services, targets, options, on_progress=bar.update)
        reports = [video_report(services.db, t) for t in targets]
    except analysis.DatabaseUnreachable as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    if as_json:
        document = {"schema_version": SCHEMA_VERSION, "videos": [r.document() for r in reports]}
        click.echo(json.dumps(document, indent=1))
    else:
        cached = [t.action is analysis.Action.CACHED for t in targets]
        click.echo("\n".join(summary_lines(reports, cached)))
    if any(r.status is not VideoStatus.DONE for r in reports):
        sys.exit(1)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--fps", type=click.FloatRange(min=0), default=None)
@click.option("--force", is_flag=True)
@click.option("--exercise", type=EXERCISES, default=None)
@click.option("--pose-backend", type=POSE_BACKENDS, default=None, help=POSE_BACKEND_HELP)
@click.option("--pose-model", type=POSE_MODEL_CHOICES, default=None, help=POSE_MODEL_HELP)
@click.option("--hands/--no-hands", default=None, help=HANDS_HELP)
@click.pass_context
def enqueue(
    ctx: click.Context,
    files: tuple[str, ...],
    fps: float | None,
    force: bool,
    exercise: str | None,
    pose_backend: str | None,
    pose_model: str | None,
    hands: bool | None,
) -> None:
    """Queue FILES (videos, photos, or folders of them) for the ingester service and print their
    video ids (needs REDIS_URL)."""
    from posepipe import analyze as analysis

    settings = _settings(ctx, analysis_fps=fps, pose_backend=pose_backend, pose_model=pose_model, hands=hands)
    services = _services(settings)
    options = analysis.AnalyzeOptions(fps=settings.analysis_fps, exercise=exercise, force=force)
    try:
        targets = analysis.enqueue(services, analysis.expand_folders(files), options)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    for t in targets:
        click.echo(
            f"{t.video_id if t.video_id is not None else '-'}\t{t.action.value}\t{t.path}"
            + (f"\t{t.error}" if t.error else "")
        )
    if any(t.action is analysis.Action.FAILED for t in targets):
        sys.exit(1)


@main.command()
@click.option("-n", "--count", type=click.IntRange(min=1), default=1, help="Worker processes to run.")
@click.option("--burst", is_flag=True, help="Run one worker in this process until the queues are empty.")
@click.pass_context
def worker(ctx: click.Context, count: int, burst: bool) -> None:
    """Run pose and analytics workers (needs REDIS_URL).

    Each worker is a process of its own, restarted if it dies and replaced when its memory passes
    POSEPIPE_WORKER_MAX_RSS_MB; this process supervises them until SIGTERM or Ctrl-C."""
    from posepipe.worker_processes import WorkerProcesses, run_worker_process

    settings = _settings(ctx)
    if settings.embedded:
        raise click.ClickException("workers need a shared queue: set REDIS_URL")
    if burst:
        if count != 1:
            raise click.UsageError("--burst runs a single worker; drop -n")
        run_worker_process(settings, burst=True)
    else:
        WorkerProcesses(settings, count).supervise()


@main.command()
@click.pass_context
def ingest(ctx: click.Context) -> None:
    """Run the ingester service: every camera in the database, and files queued by `enqueue`.

    Needs REDIS_URL. Cameras added, changed or removed with `posepipe camera` are picked up within seconds.
    """
    from pipeline import keys
    from posepipe.camera_supervisor import CameraSupervisor
    from posepipe.worker_processes import run_worker_process
    from workers.reconcile import Reconciler

    settings = _settings(ctx)
    if settings.embedded:
        raise click.ClickException("the ingester needs a shared queue: set REDIS_URL")
    services = _services(settings)
    supervisor = CameraSupervisor(services.worker_context(), settings)
    reconciler = Reconciler(services.worker_context())
    supervisor.start()
    reconciler.start()
    try:
        run_worker_process(settings, queues=(keys.QUEUE_INGEST,))
    finally:
        reconciler.stop()
        supervisor.stop()
        services.close()


@main.command()
@click.argument("video_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_context
def status(ctx: click.Context, video_id: int | None, as_json: bool, limit: int) -> None:
    """Show videos and their progress (one video in detail with VIDEO_ID)."""
    from posepipe.status import status_lines, video_status
    from posepipe.views import SCHEMA_VERSION

    settings = _settings(ctx)
    services = _services(settings)
    try:
        items = video_status(services.db, video_id, limit)
    finally:
        services.close()
    if video_id is not None and not items:
        raise click.ClickException(f"no video {video_id}")
    click.echo(
        json.dumps({"schema_version": SCHEMA_VERSION, "videos": [i.document() for i in items]}, indent=1)
        if as_json
        else "\n".join(status_lines(items, video_id is not None))
    )


@main.command()
@click.argument("video_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option(
    "--landmarks",
    default="all",
    show_default=True,
    help="all, upper_body, lower_body, hands, or landmark names separated by commas, left_hand and "
    "right_hand among them (all includes the hands when the video was analysed with --hands).",
)
@click.option("--from", "t_from", type=float, default=None, help="Start time in seconds.")
@click.option("--to", "t_to", type=float, default=None, help="End time in seconds.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-")
@click.pass_context
def poses(
    ctx: click.Context,
    video_id: int,
    fmt: str,
    landmarks: str,
    t_from: float | None,
    t_to: float | None,
    output: str,
) -> None:
    """Export a video's poses and joint angles as CSV or JSON."""
    from pose.estimator import PoseSpec
    from pose.types import parse_landmark_selection
    from posepipe.export import write_poses_csv, write_poses_json
    from storage.models import Video
    from storage.poses import iter_poses

    try:
        parse_landmark_selection(landmarks)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--landmarks") from exc
    settings = _settings(ctx)
    services = _services(settings)
    try:
        with services.db.session() as session:
            video = session.get(Video, video_id)
            if video is None:
                raise click.ClickException(f"no video {video_id}")
            resolution_wh = (video.width or 1, video.height or 1)
            selection = parse_landmark_selection(landmarks, PoseSpec.parse(video.pose_backend).hands)
            with click.open_file(output, "w") as out:
                writer = write_poses_csv if fmt == "csv" else write_poses_json
                writer(
                    cast(TextIO, out),
                    video_id,
                    iter_poses(session, video_id, t_from, t_to),
                    selection,
                    resolution_wh,
                )
    finally:
        services.close()


@main.command()
@click.argument("video_id", type=int)
@click.option(
    "--t", "t_s", type=float, default=None, help="Seconds from the start of the video (a photo needs none)."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--joint-color", default="red", show_default=True)
@click.option("--bone-color", default="white", show_default=True)
@click.option(
    "--joint-radius",
    type=click.FloatRange(min=0.001, max=0.1),
    default=0.008,
    show_default=True,
    help="Fraction of the image's shorter side.",
)
@click.option("--bone-thickness", type=click.FloatRange(min=0.001, max=0.1), default=0.004, show_default=True)
@click.pass_context
def snapshot(
    ctx: click.Context,
    video_id: int,
    t_s: float | None,
    output: str,
    joint_color: str,
    bone_color: str,
    joint_radius: float,
    bone_thickness: float,
) -> None:
    """Write the analysed frame nearest --t (a photo: the photo) with its skeleton drawn."""
    from posepipe.render import SkeletonStyle, parse_color
    from posepipe.snapshots import render_snapshot

    try:
        style = SkeletonStyle(parse_color(joint_color), parse_color(bone_color), joint_radius, bone_thickness)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    settings = _settings(ctx)
    services = _services(settings)
    try:
        frame_t = render_snapshot(services.db, video_id, t_s, Path(output), style)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    click.echo(f"{output}: frame at {frame_t:.3f} s")


@main.command()
@click.option("--video", "video_id", type=int, default=None)
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Event type (repeatable): rep, exercise_set, fall, long_lie, fall_recovered, ...",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@click.option("--limit", type=int, default=None)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Print each new event as it is stored, one JSON line each (the items of GET /api/events), "
    "until interrupted.",
)
@click.option("--camera", default=None, help="With --follow: only this camera's events.")
@click.option(
    "--after-id",
    type=click.IntRange(min=0),
    default=None,
    help="With --follow: start after this event id (resume; default: only events from now on).",
)
@click.pass_context
def events(
    ctx: click.Context,
    video_id: int | None,
    types: tuple[str, ...],
    fmt: str,
    limit: int | None,
    follow: bool,
    camera: str | None,
    after_id: int | None,
) -> None:
    """List stored events, or follow new ones (--follow)."""
    from posepipe.export import write_events
    from posepipe.views import EventView
    from storage.events import list_events_with_sources

    if not follow and (camera is not None or after_id is not None):
        raise click.UsageError("--camera and --after-id go with --follow")
    settings = _settings(ctx)
    services = _services(settings)
    try:
        if follow:
            from posepipe.follow import follow_events

            follow_events(services.db, sys.stdout, video_id, camera, types, after_id)
            return
        with services.db.session() as session:
            rows = list_events_with_sources(
                session, video_id=video_id, types=list(types) or None, limit=limit
            )
            views = [EventView.from_rows(row, source) for row, source in rows]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    write_events(sys.stdout, views, fmt)


@main.command()
@click.pass_context
def mqtt(ctx: click.Context) -> None:
    """Publish events and camera status to the MQTT broker of POSEPIPE_MQTT_URL until stopped.

    It resumes where it stopped; a second one for the same prefix stands by and takes over when
    the first stops or dies (docs/integrations.md).
    """
    import signal

    from posepipe.mqtt_bridge import MqttBridge
    from storage.db import Database

    settings = _settings(ctx)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate()
        try:
            bridge = MqttBridge(db, settings)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: bridge.stop())
        bridge.run()
    finally:
        db.dispose()


@main.command("eval")
@click.argument("media_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Ground truth JSON (default MEDIA_DIR/ground_truth.json).",
)
@click.option("--fps", type=click.FloatRange(min=0), default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--only", default=None, help="Only clips whose path contains this text.")
@click.option("--pose-backend", type=POSE_BACKENDS, default=None, help=POSE_BACKEND_HELP)
@click.option("--pose-model", type=POSE_MODEL_CHOICES, default=None, help=POSE_MODEL_HELP)
@click.option(
    "--sweep",
    is_flag=True,
    help="Also run every clip at 7.5 and 15 fps, mirrored and cropped to 80 %% around the person, "
    "and report the runs whose verdict changed.",
)
@click.option(
    "--fit-check/--no-fit-check",
    default=True,
    show_default=True,
    help="Refit the numbers fitted from clips on the stored poses, leaving one source out at a time, "
    "and report the left-out scores beside the fit on all (about a minute on 2 cores).",
)
@click.pass_context
def eval_(
    ctx: click.Context,
    media_dir: str,
    truth: str | None,
    fps: float | None,
    workers: int | None,
    as_json: bool,
    only: str | None,
    pose_backend: str | None,
    pose_model: str | None,
    sweep: bool,
    fit_check: bool,
) -> None:
    """Analyse every labelled clip of MEDIA_DIR and score reps and falls against the truth."""
    from analytics.evaluation import format_report
    from posepipe import evaluate

    settings = _settings(ctx, analysis_fps=fps, pose_backend=pose_backend, pose_model=pose_model)
    services = _services(settings)
    truth_path = Path(truth) if truth else Path(media_dir) / "ground_truth.json"
    try:
        report = evaluate.evaluate(
            services, Path(media_dir), truth_path, workers=workers, only=only, check_fits=fit_check
        )
        swept = (
            evaluate.sweep(services, Path(media_dir), truth_path, report, workers=workers, only=only)
            if sweep
            else None
        )
    finally:
        services.close()
    if as_json:
        doc = report.to_dict()
        if swept is not None:
            doc["sweep"] = {
                "runs": len(swept.runs),
                "changed_fraction": swept.changed_fraction,
                "changed": [r.__dict__ for r in swept.changed],
            }
        click.echo(json.dumps(doc, indent=1))
    else:
        click.echo(format_report(report))
        if swept is not None:
            click.echo(swept.format())


@main.group()
def camera() -> None:
    """Live cameras: add, list, remove. `posepipe ingest` picks changes up without a restart."""


@camera.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--fps", type=click.FloatRange(min=0.1, max=60), default=10.0, show_default=True)
@click.option("--exercise", type=EXERCISES, default=None, help="The exercise done in front of it.")
@click.option(
    "--pose-backend",
    type=POSE_BACKENDS,
    default=None,
    help="Pose backend of its sessions (default: POSEPIPE_CAMERA_POSE_BACKEND, mediapipe): "
    "mediapipe+movenet keeps more people lying on the floor, litert poses as mediapipe does for less "
    "CPU, multi or movenet suit a room with several people.",
)
@click.option(
    "--long-lie-s",
    type=click.FloatRange(min=0, min_open=True, max=86_400),
    default=None,
    help="Seconds a fallen person stays down before long_lie, for this camera "
    "(default: POSEPIPE_LONG_LIE_S).",
)
@click.option(
    "--hands", is_flag=True, help="Also find each person's hands (21 landmarks each) in its sessions."
)
@click.pass_context
def camera_add(
    ctx: click.Context,
    name: str,
    url: str,
    fps: float,
    exercise: str | None,
    pose_backend: str | None,
    long_lie_s: float | None,
    hands: bool,
) -> None:
    """Add camera NAME reading URL (rtsp://user:password@host/path); the URL is stored encrypted."""
    from storage.cameras import CameraError, add_camera

    settings = _settings(ctx)
    services = _services(settings)
    backend = pose_backend or settings.camera_pose_backend
    try:
        with services.db.session() as session:
            cam = add_camera(
                session, services.secret_box(), name, url, fps, exercise, backend, long_lie_s, hands
            )
            click.echo(f"{cam.id}\t{cam.name}\t{cam.url_masked}")
    except CameraError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()


@camera.command("remove")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete its recorded sessions, poses and events.")
@click.pass_context
def camera_remove(ctx: click.Context, name: str, purge: bool) -> None:
    """Stop and remove camera NAME; its recorded sessions and events stay unless --purge."""
    from storage.cameras import CameraError, remove_camera

    services = _services(_settings(ctx))
    try:
        with services.db.session() as session:
            remove_camera(session, name, purge=purge)
    except CameraError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    click.echo(f"removed {name}")


@camera.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def camera_list(ctx: click.Context, as_json: bool) -> None:
    """Cameras with their status as the ingester last reported it."""
    from posepipe.status import camera_lines, camera_status
    from posepipe.views import SCHEMA_VERSION

    services = _services(_settings(ctx))
    try:
        items = camera_status(services.db)
    finally:
        services.close()
    document = {"schema_version": SCHEMA_VERSION, "cameras": [i.document() for i in items]}
    click.echo(json.dumps(document, indent=1) if as_json else "\n".join(camera_lines(items)))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_context
def api(ctx: click.Context, host: str, port: int) -> None:
    """Serve the REST API and the web UI (http://HOST:PORT/). Needs a token: `posepipe token create`.

    Without REDIS_URL uploads are analysed by this process (in a child process it starts);
    with REDIS_URL they are queued for `posepipe ingest` and `posepipe worker`. Webhooks are
    delivered from here and from every worker.
    """
    import uvicorn

    from posepipe.api.app import create_app
    from posepipe.api.events import end_event_streams

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn waits for open responses before it stops, and an event stream never ends
            # by itself: end them first.
            end_event_streams()
            super().handle_exit(sig, frame)

    settings = _settings(ctx)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # our handler (secrets masked) formats uvicorn's records too
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )
    Server(config).run()


@main.group()
def token() -> None:
    """API tokens: create (shown once), list, revoke. Only their SHA-256 is stored."""


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "admin"]),
    default="read",
    show_default=True,
    help="read: every GET; admin: also uploads, changes and deletes.",
)
@click.pass_context
def token_create(ctx: click.Context, name: str, scope: str) -> None:
    """Make a token called NAME and print it on stdout (the only time it is shown)."""
    from storage.models import TokenScope
    from storage.tokens import TokenError, create_token

    services = _services(_settings(ctx))
    try:
        with services.db.session() as session:
            created = create_token(session, name, TokenScope(scope))
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    click.echo(created.token)
    click.echo(
        f"token {created.name!r} ({created.scope.value}) created; it is not stored, copy it now", err=True
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """Tokens with their scope, first characters, and when they were last used (never the token)."""
    from storage.tokens import list_tokens

    services = _services(_settings(ctx))
    try:
        with services.db.session() as session:
            items: list[dict[str, Any]] = [
                {
                    "id": t.id,
                    "name": t.name,
                    "scope": t.scope.value,
                    "prefix": t.prefix,
                    "created_at": t.created_at.isoformat(),
                    "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                    "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                }
                for t in list_tokens(session)
            ]
    finally:
        services.close()
    if as_json:
        click.echo(json.dumps({"tokens": items}, indent=1))
        return
    click.echo(f"{'id':>4} {'name':<20} {'scope':<6} {'prefix':<10} {'last used':<20} state")
    for t in items:
        used = (t["last_used_at"] or "never")[:19]
        state = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else "active"
        click.echo(f"{t['id']:>4} {t['name']:<20} {t['scope']:<6} {t['prefix'] + '…':<10} {used:<20} {state}")


@token.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke the active token called NAME (requests with it get 401 at once)."""
    from storage.tokens import TokenError, revoke_token

    services = _services(_settings(ctx))
    try:
        with services.db.session() as session:
            revoke_token(session, name)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()
    click.echo(f"revoked {name}")
