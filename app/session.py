"""One ``run``: open the gallery, the models, the source and the outputs a
:class:`~app.config.RunConfig` names, run the main loop, print the summary.

Used by the CLI (``python -m app run`` / ``run_video.py``) and the demo. Exit codes:
0 done, 1 a runtime failure (camera lost, model error), 2 bad input (arguments, files,
photos, gallery).
"""
from __future__ import annotations

import sys
from contextlib import ExitStack

from app.config import RunConfig

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def run_session(config: RunConfig) -> int:
    """Everything ``config`` asks for, start to summary; returns the exit code."""
    from app.capture import CameraError, open_source
    from app.factory import build_pipeline
    from app.gallery import Gallery
    from app.runloop import LoopOptions, run

    headless = _headless(config)
    source = open_source(config.source, progress=config.progress)
    with ExitStack() as stack:
        gallery = stack.enter_context(Gallery(config.gallery))
        pipeline = build_pipeline(config, gallery)
        stack.callback(pipeline.close)
        sync_gallery(pipeline)
        try:
            source.start()
        except CameraError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        stack.callback(source.stop)
        outputs = _open_outputs(config, source, headless, stack)
        if outputs.window is not None:  # key l may switch to dlib: load it now, aside
            pipeline.landmark_models.preload("dlib")
        models = [config.detector, f"landmarks:{config.landmarks}",
                  f"facenet:{config.embedder}"]
        summary, stop_reason = run(pipeline, source, outputs,
                                   LoopOptions(max_frames=config.max_frames,
                                               side_by_side=config.side_by_side,
                                               models=models))
    print_summary(summary, stop_reason, config)
    if getattr(source, "error", None):
        print(f"error: {source.error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _headless(config: RunConfig) -> bool:
    from app.sinks import display_available

    if not config.headless and not display_available():
        print("no display found (DISPLAY/WAYLAND_DISPLAY unset): running headless",
              file=sys.stderr)
        return True
    return config.headless


def _open_outputs(config: RunConfig, source, headless: bool, stack: ExitStack):
    """The window, annotated video and events file ``config`` names, each closed by
    ``stack``."""
    from app.runloop import Outputs
    from app.sinks import EventsWriter, VideoSink, Window

    outputs = Outputs()
    if config.output:
        outputs.video = VideoSink(config.output, getattr(source, "fps", None) or 30.0)
        stack.callback(outputs.video.close)
    if config.events:
        outputs.events = EventsWriter(config.events)
        stack.callback(outputs.events.close)
    if not headless:
        outputs.window = Window()
        stack.callback(outputs.window.close)
    return outputs


def sync_gallery(pipeline) -> None:
    """Re-embed stored crops another embedder made, saying what happened."""
    done, lost = pipeline.sync_gallery()
    if done:
        print(f"gallery: embedded {done} stored sample(s) with {pipeline.model_id} "
              f"(they were enrolled with another embedder)")
    if lost:
        print(f"warning: {lost} gallery sample(s) have no stored face crop and were made by "
              f"another embedder; they are ignored (re-enrol those people)", file=sys.stderr)


def print_summary(summary: dict, stop_reason: str | None, config: RunConfig) -> None:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["stage_ms"].items())
    print(f"frames: {summary['frames']}  FPS: {summary['fps']:.1f}  "
          f"median ms per stage: {stages}")
    if "latency_ms" in summary:
        lat = summary["latency_ms"]
        print(f"capture->output latency ms: median {lat['median']}, p95 {lat['p95']}; "
              f"dropped frames: {summary['dropped']}")
    if stop_reason:
        print(f"stopped: {stop_reason}")
    for what, path in (("annotated video", config.output), ("events", config.events)):
        if path:
            print(f"{what}: {path}")
