"""A test RTSP server: GStreamer's RTSP server looping video files forever, one mount point each.

Run by the system Python (`/usr/bin/python3`), which has GStreamer's introspection bindings
(Debian: gir1.2-gst-rtsp-server-1.0 python3-gi and the gstreamer1.0-plugins-*); the project's
venv does not. Tests start it through `tests.rtsp`; by hand:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --mount cam1=clip.mp4 [--user u --password p]

Each client gets its own pipeline from the start of the file (an unshared media), so the
first frame it receives is a key frame. By default the file's H.264 is demuxed and sent
as is (no decoding, next to no CPU); `--encode` decodes and re-encodes with x264 instead
(any input codec, a key frame every second). Looping happens in a feeder pipeline that
rewinds at end of file and shifts each pass's timestamps by the length of the passes
before it, so the served stream is seamless and its timestamps only increase. Prints
`READY rtsp://127.0.0.1:<port>` on stdout once it accepts connections; errors go to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# The media pipeline: the feeder pushes H.264 access units into the appsrc. The appsrc is
# not seekable, so the server announces a live stream (no range), like a camera.
MEDIA_LAUNCH = (
    "( appsrc name=src format=time is-live=false block=true max-bytes={max_bytes} "
    "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=0 )"
)
# Bytes the appsrc holds before the feeder blocks: a few frames of small video, so the
# feeder stays just ahead of the real-time playout (the media's sinks pace it).
APPSRC_MAX_BYTES = 256 * 1024
FEED_PASSTHROUGH = (
    "filesrc location={location} ! qtdemux name=demux demux.video_0 ! h264parse "
    "! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false emit-signals=true"
)
# One key frame a second at 30 fps keeps a late or reconnecting reader's wait short.
FEED_ENCODE = (
    "filesrc location={location} ! decodebin ! videoconvert "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse "
    "! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false emit-signals=true"
)
# Frame duration assumed for a buffer that does not carry one (30 fps).
DEFAULT_FRAME_NS = 1_000_000_000 // 30


class LoopFeeder:
    """Reads one file in a loop with its own pipeline and pushes re-timed buffers into an appsrc."""

    def __init__(self, location: str, appsrc: Gst.Element, encode: bool) -> None:
        template = FEED_ENCODE if encode else FEED_PASSTHROUGH
        self.pipeline = Gst.parse_launch(template.format(location=_quote(location)))
        self.appsrc = appsrc
        self.offset_ns = 0  # added to every timestamp of the current pass
        # First presentation time and end of the latest frame of the current pass, in file
        # time (the first pts is not 0 when B-frames delay presentation).
        self.pass_start_ns: int | None = None
        self.pass_end_ns = 0
        self.caps_set = False
        self.stopped = threading.Event()
        sink = self.pipeline.get_by_name("sink")
        sink.connect("new-sample", self._on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    def start(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        self.stopped.set()
        self.pipeline.set_state(Gst.State.NULL)
        self.pipeline.get_bus().remove_signal_watch()

    def _on_sample(self, sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if sample is None or self.stopped.is_set():
            return Gst.FlowReturn.FLUSHING
        if not self.caps_set:
            self.appsrc.set_property("caps", sample.get_caps())
            self.caps_set = True
        buf = sample.get_buffer().copy()
        # Timestamps as running time of this pass (x264enc, for one, starts its segment at
        # 1000 h), then shifted past the passes before it.
        segment = sample.get_segment()
        pts = _running_time(segment, buf.pts)
        dts = _running_time(segment, buf.dts)
        duration = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else DEFAULT_FRAME_NS
        if pts is not None:
            self.pass_start_ns = pts if self.pass_start_ns is None else min(self.pass_start_ns, pts)
            self.pass_end_ns = max(self.pass_end_ns, pts + duration)
        buf.pts = Gst.CLOCK_TIME_NONE if pts is None else pts + self.offset_ns
        buf.dts = Gst.CLOCK_TIME_NONE if dts is None else dts + self.offset_ns
        # Blocks while the appsrc is full; returns FLUSHING once the media is torn down.
        return self.appsrc.emit("push-buffer", buf)

    def _on_message(self, bus: Gst.Bus, message: Gst.Message) -> None:
        if self.stopped.is_set():
            return
        if message.type == Gst.MessageType.EOS:
            # The next pass's first frame follows this pass's last one; rewind the file.
            self.offset_ns += self.pass_end_ns - (self.pass_start_ns or 0)
            self.pass_start_ns = None
            self.pass_end_ns = 0
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            print(f"feeder error: {err.message} ({debug})", file=sys.stderr, flush=True)


def _running_time(segment: Gst.Segment, timestamp: int) -> int | None:
    if timestamp == Gst.CLOCK_TIME_NONE:
        return None
    running = segment.to_running_time(Gst.Format.TIME, timestamp)
    return None if running == Gst.CLOCK_TIME_NONE else running


def _quote(location: str) -> str:
    return '"' + location.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LoopFactory(GstRtspServer.RTSPMediaFactory):
    """One mount point: each client's media gets its own LoopFeeder."""

    def __init__(self, location: str, encode: bool) -> None:
        super().__init__()
        self.location = location
        self.encode = encode
        self.set_launch(MEDIA_LAUNCH.format(max_bytes=APPSRC_MAX_BYTES))
        self.set_shared(False)
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(
        self, factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = LoopFeeder(self.location, appsrc, self.encode)
        media.connect("unprepared", lambda _media: feeder.stop())
        feeder.start()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve video files over RTSP in a loop.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument(
        "--mount", action="append", required=True, metavar="NAME=FILE", help="serve FILE at /NAME"
    )
    parser.add_argument("--user", help="require HTTP basic auth with this user")
    parser.add_argument("--password", help="the user's password")
    parser.add_argument(
        "--encode", action="store_true", help="re-encode with x264 instead of passing H.264 through"
    )
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def add_auth(server: GstRtspServer.RTSPServer, user: str, password: str) -> GstRtspServer.RTSPPermissions:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(user, "media.factory.access", True)
    permissions.add_permission_for_role(user, "media.factory.construct", True)
    return permissions


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    permissions = add_auth(server, args.user, args.password) if args.user else None
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, sep, location = spec.partition("=")
        if not sep or not name or not location:
            print(f"bad --mount {spec!r}: expected NAME=FILE", file=sys.stderr)
            return 2
        if not os.path.isfile(location):
            print(f"bad --mount {spec!r}: {location} is not a file", file=sys.stderr)
            return 2
        factory = LoopFactory(os.path.abspath(location), args.encode)
        if permissions is not None:
            factory.set_permissions(permissions)
        mounts.add_factory("/" + name.strip("/"), factory)
    try:
        server.attach(None)
    except GLib.Error as exc:
        print(f"cannot listen on {args.address}:{args.port}: {exc.message}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.address}:{server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
