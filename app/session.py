"""One ``run``: open the gallery, the models, the source and the outputs a
:class:`~app.config.RunConfig` names, run the main loop, print the summary.

Used by the CLI (``python -m app run`` / ``run_video.py``) and the demo. Exit codes:
``app.config.EXIT_CODES`` (a run's own: ``app.outputs.files.exit_code``). Outputs: see
``app.outputs.files``.
"""
from __future__ import annotations

import sys
from contextlib import ExitStack, nullcontext, redirect_stdout
from pathlib import Path

# the exit codes live with the settings; the CLI takes them from here
from .config import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, RunConfig  # noqa: F401
from .protocols import Source


def run_session(config: RunConfig) -> int:
    """Everything ``config`` asks for, start to summary; returns the exit code. With
    ``--events -`` the JSON lines own standard output and every human line goes to
    standard error."""
    with human_output(config):
        return _run_session(config)


def human_output(config: RunConfig):
    """Where the human lines go: standard output, or standard error where the events are
    written to standard output (``--events -``)."""
    return redirect_stdout(sys.stderr) if events_to_stdout(config) else nullcontext()


def events_to_stdout(config: RunConfig) -> bool:
    from .outputs.sinks import STDOUT
    return config.events is not None and str(config.events) == STDOUT


def events_writer(config: RunConfig, live: bool, ended_after: int):
    """The ``--events`` writer ``config`` names (``live``: appended at its path as frames
    come; ``ended_after``: the tracker's ``max_missed``, for ``--events-on change``)."""
    from .outputs.sinks import EventsWriter
    return EventsWriter(config.events, on=config.events_on, live=live, ended_after=ended_after)


def check_config_outputs(config: RunConfig) -> None:
    """Before anything is opened for writing: no output may be an input or another one."""
    from .outputs.files import check_outputs, gallery_files
    from .outputs.sinks import check_video_name

    if config.output:
        check_video_name(config.output)
    check_outputs({"--output": config.output,
                   "--events": None if events_to_stdout(config) else config.events},
                  {"--source": _source_file(config.source), **gallery_files(config.gallery)})


def _run_session(config: RunConfig) -> int:
    from .factory import build_pipeline
    from .outputs.files import exit_code
    from .people.gallery import Gallery
    from .runloop import LoopOptions, run
    from .sources.capture import CameraError

    check_config_outputs(config)
    headless = _headless(config)
    source = open_configured_source(config)
    with ExitStack() as stack:
        stack.callback(source.stop)  # also when the gallery or a model fails to open
        gallery = stack.enter_context(Gallery(config.gallery, readonly=True))
        print_warnings(gallery.warnings)
        pipeline = build_pipeline(config, gallery)
        stack.callback(pipeline.close)
        if not headless:
            preload_landmark_models(pipeline)
        sync_gallery(pipeline, progress=config.progress)
        pipeline.warm_up(1 if source.is_live else 2)   # before a camera starts delivering
        try:
            source.start()
        except CameraError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        outputs = _open_outputs(config, source, headless, stack,
                                ended_after=pipeline.tracker.max_missed)
        models = [config.detector, f"landmarks:{config.landmarks}",
                  f"facenet:{config.embedder}"]
        summary, stop_reason = run(pipeline, source, outputs,
                                   LoopOptions(max_frames=config.max_frames,
                                               side_by_side=config.side_by_side,
                                               landmarks=config.landmarks,
                                               models=models,
                                               pacer=pacer(config, source, headless),
                                               name_input=_name_input(headless),
                                               record_status=config.record_status,
                                               sync_embed=config.sync_embed,
                                               screenshot_dir=str(config.output.parent
                                                                  if config.output else ".")))
    sinks = [s for s in (outputs.video, outputs.events) if s is not None]
    failure = next((s.failed for s in sinks if s.failed), None)
    print_summary(summary, stop_reason, config,
                  written=failure is None and outputs.failed is None)
    if failure is not None:
        _print_write_failure(failure, sinks)
        return exit_code(stop_reason, failed=True)
    if outputs.failed is not None:   # the source or a stage failed mid-run
        _print_run_failure(outputs.failed, summary["frames"], sinks)
        return EXIT_FAILED
    return exit_code(stop_reason, failed=False)


def open_configured_source(config: RunConfig, realtime: bool = False) -> Source:
    """The source ``config`` names (not started). ``--reconnect``: a lost camera or stream
    is reopened with backoff instead of ending. ``--loop``: a video file is played again
    and again. ``realtime`` (serve): a video file plays through the camera path at its own
    frame rate, so frames come as a camera's would and a slow machine drops frames
    instead of falling behind the picture's clock."""
    from .sources.capture import (
        RECONNECT_ATTEMPTS,
        VideoFileSource,
        open_source,
        realtime_video,
    )
    from .sources.playback import LoopingSource

    attempts = None if config.reconnect else RECONNECT_ATTEMPTS
    source = open_source(config.source, progress=config.progress, reconnect_attempts=attempts)
    if not isinstance(source, VideoFileSource):
        if config.loop:
            print("note: --loop applies to video files only", file=sys.stderr)
        return source
    path = source.path
    if not (realtime or config.loop):
        return source
    source.stop()

    def reopen() -> Source:
        return realtime_video(path) if realtime else open_source(path, progress=False)
    return LoopingSource(reopen) if config.loop else reopen()


def pacer(config: RunConfig, source: Source, headless: bool):
    """A file in a window plays at its own frame rate x ``--speed``; headless runs,
    cameras, images and ``--fast`` are never held back."""
    from .sources.playback import Pacer

    speed = None if headless else (config.speed if config.speed is not None else 1.0)
    if not speed or not source.fps or source.is_live:
        return None
    return Pacer(source.fps, speed)


def _name_input(headless: bool) -> str:
    from .window.names import choose_name_input
    return "window" if headless else choose_name_input()


def _headless(config: RunConfig) -> bool:
    from .outputs.sinks import display_available

    if not config.headless and not display_available():
        print("no display found (DISPLAY/WAYLAND_DISPLAY unset): running headless",
              file=sys.stderr)
        return True
    return config.headless


def _open_outputs(config: RunConfig, source: Source, headless: bool, stack: ExitStack,
                  ended_after: int = 10):
    """The window, annotated video and events file ``config`` names, each closed by
    ``stack``; the files are moved into place only if all went well (:func:`_finisher`)."""
    from .outputs.sinks import VideoSink, Window
    from .runloop import Outputs

    outputs = Outputs()
    sinks: list = []
    stack.push(_finisher(sinks, outputs))
    if config.output:
        outputs.video = VideoSink(config.output, source.fps or 30.0)
        sinks.append(outputs.video)
    if config.events:
        outputs.events = events_writer(config, live=source.is_live, ended_after=ended_after)
        sinks.append(outputs.events)
    if not headless:
        outputs.window = Window()
        stack.callback(outputs.window.close)
    return outputs


def preload_landmark_models(pipeline) -> None:
    """Load every landmark model before the window opens, so the first l or s never
    freezes the picture. dlib's loader holds the GIL for its whole load (0.6-2.3 s),
    so loading it on a background thread would freeze the picture just the same."""
    from .config import LANDMARK_MODELS
    for name in LANDMARK_MODELS:
        pipeline.landmark_models[name]


def _finisher(sinks: list, outputs=None):
    """ExitStack exit callback: finish every output file, then move them all into place
    only if the block ended normally, none failed and the run did not fail mid-run
    (``outputs.failed``); else the partial files stay and the previous targets are
    untouched."""
    def finish(exc_type, exc, tb):
        for sink in sinks:
            sink.close(commit=False)
        run_failed = outputs is not None and outputs.failed is not None
        if exc_type is None and not run_failed and not any(sink.failed for sink in sinks):
            for sink in sinks:
                sink.pending.commit()
    return finish


def _source_file(source: str) -> Path | None:
    text = str(source).strip()
    if text.isdigit() or "://" in text:
        return None
    return Path(text).expanduser()


def _kept_partials(sinks: list) -> list[str]:
    return [str(s.pending.path) for s in sinks
            if not s.pending.in_place and s.pending.path.exists()]


def _print_run_failure(reason: str, frames: int, sinks: list) -> None:
    """A failure mid-run: what happened, and where the frames done so far are."""
    kept = _kept_partials(sinks)
    print(f"error: {reason}. The run stopped after {frames} frame(s); no output was "
          f"replaced." + (f" What was written so far is in {', '.join(kept)} (the events "
                          f"file ends with the summary); rename it to keep it, or delete it."
                          if kept else ""), file=sys.stderr)


def _print_write_failure(failure, sinks: list) -> None:
    kept = _kept_partials(sinks)
    print(f"error: {failure}. The run stopped; no output was replaced (a previous file of "
          f"that name is untouched)." + (f" What was written so far is in {', '.join(kept)}"
          f" (the events file ends with why); delete what you do not need." if kept else "")
          + f" {failure.advice}", file=sys.stderr)


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def sync_gallery(pipeline, progress: bool = True) -> None:
    """Re-embed stored crops another embedder or crop rule made, in batches with a
    progress bar, saying what happened."""
    total = len(pipeline.gallery.missing_sample_ids(pipeline.model_id))
    if total and not pipeline.gallery.can_write():
        print(f"note: gallery {pipeline.gallery.path} is read-only here, so the {total} "
              f"sample(s) re-embedded now are kept for this run only (again at every start)",
              file=sys.stderr)
    bar = None
    if total and progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc=f"re-embedding gallery ({pipeline.model_id})",
                   unit="face", file=sys.stderr, dynamic_ncols=True)
    elif total:
        print(f"gallery: re-embedding {total} stored sample(s) with {pipeline.model_id}",
              file=sys.stderr)
    try:
        done, lost = pipeline.sync_gallery(on_batch=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if done and not pipeline.gallery.can_write():
        print(f"warning: gallery {pipeline.gallery.path} is read-only here: {done} stored "
              f"sample(s) enrolled with another embedder or crop were embedded with "
              f"{pipeline.model_id} for this run only (run once where it can be written "
              f"to keep them)", file=sys.stderr)
    elif done:
        print(f"gallery: embedded {done} stored sample(s) with {pipeline.model_id} "
              f"(they were enrolled with another embedder or crop)")
    if lost:
        print(f"warning: {lost} gallery sample(s) were made by another embedder or crop and "
              f"have no usable face crop for this one (none stored, or no face found when "
              f"re-cutting it); they are ignored (re-enrol those people)", file=sys.stderr)


def print_summary(summary: dict, stop_reason: str | None, config: RunConfig,
                  written: bool = True) -> None:
    frames = summary["stage_frames"]
    stages = ", ".join(f"{k} {v:.1f} ({frames[k]})" for k, v in summary["stage_mean_ms"].items())
    print(f"frames: {summary['frames']}  FPS: {summary['fps']:.1f}  "
          f"mean ms per stage over the frames that ran it (frames): {stages}")
    if "latency_ms" in summary:
        lat = summary["latency_ms"]
        print(f"capture->output latency ms: median {lat['median']}, p95 {lat['p95']}; "
              f"dropped frames: {summary['dropped']}")
    if stop_reason:
        print(f"stopped: {stop_reason}")
    for what, path in (("annotated video", config.output), ("events", config.events)):
        if path and written:
            print(f"{what}: {path}")
