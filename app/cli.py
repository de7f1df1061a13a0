"""Command line: ``facelandmarks`` / ``python -m app`` run|serve|enroll|people|index|who|relabel|bench|eval|demo|models
(``run_video.py`` == ``run``).

This is the composition root: it parses arguments into a :class:`RunConfig` and hands it
to ``app.session`` (run), the gallery (enroll, people) or the lab (bench, eval, demo).
Exit codes: ``app.config.EXIT_CODES`` (the one table; ``--help`` prints it). Each
command's options are built by one small ``_add_<command>`` function.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import (
    DEFAULT_EMBEDDER,
    DETECTORS,
    EMBEDDERS,
    EVENTS_ON,
    EXIT_CODES,
    EXIT_FAILED,
    LANDMARK_BACKENDS,
    LANDMARK_MODELS,
    LANDMARK_MODES,
    RunConfig,
    check_threads,
    default_threads,
)
from .paths import ModelFileError, default_gallery_path
from .people.gallery import GalleryError
from .session import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, print_warnings
from .stages.align import CROPS

# "facelandmarks" when run as the installed command, else the checkout's spelling
PROG = "facelandmarks" if Path(sys.argv[0]).name == "facelandmarks" else "python -m app"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["models"]:   # its own parser (argparse's REMAINDER drops a leading -h)
        return cmd_models(argparse.Namespace(argv=argv[1:]))
    args = _parser().parse_args(argv)
    if not getattr(args, "command", None):
        _parser().print_help()
        return EXIT_BAD_INPUT
    try:
        _default_gallery(args)
        return args.handler(args)
    except ModelFileError as exc:   # missing or damaged: the install, not the input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (FileNotFoundError, GalleryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_main(argv: list[str] | None = None) -> int:
    """``run_video.py``: the ``run`` command without the word ``run``."""
    return main(["run", *(sys.argv[1:] if argv is None else argv)])


# -- commands ----------------------------------------------------------------------------
def cmd_run(args) -> int:
    from .session import run_session
    return run_session(_config(args))


def cmd_serve(args) -> int:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "multipart", "websockets")
               if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: serve needs {', '.join(missing)}: pip install 'facelandmarks[serve]'  "
              f"(or, in a checkout: make setup)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .server.access import AccessError, read_token
    from .server.main import ServeOptions, serve

    try:
        token = read_token(args.token, args.token_file)
    except AccessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    config = RunConfig(source=str(args.source), detector=args.detector,
                       landmarks=args.landmarks, embedder=args.embedder,
                       threshold=args.threshold, gallery=Path(args.gallery),
                       headless=True, threads=args.threads, loop=args.loop, progress=False,
                       events=_path(args.events), events_on=args.events_on, reconnect=True)
    return serve(config, ServeOptions(host=args.host, port=args.port, token=token,
                                      pace=not args.fast))


def cmd_enroll(args) -> int:
    from .factory import build_pipeline
    from .people.enroll import EnrolmentError, enroll_photos, read_photo
    from .people.gallery import Gallery, clean_name
    from .session import sync_gallery

    clean_name(args.name)
    try:  # bad photos fail before the models load (seconds) and before the gallery opens
        for photo in args.photos:
            read_photo(photo)
    except EnrolmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    config = RunConfig(source="", detector=args.detector, embedder=args.embedder,
                       gallery=Path(args.gallery), threads=args.threads)
    with Gallery(config.gallery) as gallery:
        print_warnings(gallery.warnings)
        pipeline = build_pipeline(config, gallery)
        try:
            # people enrolled with another embedder or crop are re-embedded first, so the
            # check for the same face under another name sees them
            sync_gallery(pipeline)
            report = enroll_photos(pipeline, args.name, args.photos, force=args.force)
        except EnrolmentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        finally:
            pipeline.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.created_new:
        print(f"enrolled {report.name}: {report.samples} sample(s) in {config.gallery}")
    else:
        print(f"{report.name} was already enrolled: added {report.samples} sample(s) "
              f"in {config.gallery}")
    return EXIT_OK


def cmd_people(args) -> int:
    from .people.gallery import Gallery, PersonNotFound

    # list only reads (read-only; a missing file is an empty gallery, never created);
    # remove/rename refuse a missing file instead of making an empty one.
    listing = args.action == "list"
    with Gallery(Path(args.gallery), readonly=listing, create=listing) as gallery:
        print_warnings(gallery.warnings)
        if listing and not gallery.path.exists():
            print(f"(no gallery file at {gallery.path}; nothing was created)", file=sys.stderr)
        try:
            if args.action == "list":
                people = gallery.people()
                if not people:
                    print(f"nobody enrolled in {gallery.path}")
                for person in people:
                    print(f"{person.name}\t{person.samples} sample(s)")
            elif args.action == "remove":
                count = gallery.remove(args.names[0])
                print(f"removed {args.names[0]} ({count} sample(s))")
            elif args.action == "rename":
                gallery.rename(args.names[0], args.names[1])
                print(f"renamed {args.names[0]} to {args.names[1]}")
        except PersonNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_OK


def cmd_bench(args) -> int:
    from .lab.bench import main as bench_main
    return bench_main(args)


def cmd_eval(args) -> int:
    from .lab.evaluate import main as evaluate_main
    return evaluate_main(args)


def cmd_eval_landmarks(args) -> int:
    from .lab.landmark_eval import main as landmark_eval_main
    return landmark_eval_main(args)


def cmd_eval_smoothing(args) -> int:
    from .lab.smooth_eval import main as smooth_eval_main
    return smooth_eval_main(args)


def cmd_models(args) -> int:
    """``models check`` (any install), or a toolchain command (needs TensorFlow)."""
    import importlib.util

    if args.argv[:1] == ["check"]:
        from .model_files import check_files, report
        text, ok = report(check_files())
        print(text)
        return EXIT_OK if ok else EXIT_FAILED
    if args.argv[:1] not in ([], ["-h"], ["--help"]) and importlib.util.find_spec(
            "tensorflow") is None:
        print("error: the model toolchain needs TensorFlow: pip install "
              "'facelandmarks[toolchain]'  (or, in a checkout: make setup)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .toolchain.cli import main as toolchain_main
    return toolchain_main(args.argv, prog=f"{PROG} models")


def cmd_index(args) -> int:
    import importlib.util

    missing = [m for m in ("pyarrow", *(("ray",) if args.cluster else ()))
               if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: index needs {', '.join(missing)}: pip install 'facelandmarks[cluster]'  "
              f"(or, in a checkout: make setup)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .index.run import IndexOptions, run_index
    from .index.worker import IndexSettings

    settings = IndexSettings(detector=args.detector, embedder=args.embedder, fps=args.fps,
                             detect_every=args.detect_every)
    return run_index(IndexOptions(paths=tuple(args.paths), out=Path(args.out),
                                  gallery=Path(args.gallery), settings=settings,
                                  workers=args.workers, cluster=args.cluster,
                                  resume=args.resume,
                                  progress=not args.no_progress and sys.stderr.isatty()))


def cmd_who(args) -> int:
    from .index.query import run_who
    if (args.name is None) == (args.photo is None):
        print(f"error: usage: {PROG} who NAME --index DIR, or who --photo PHOTO --index DIR",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_who(Path(args.index), args.name, as_json=args.json, gap_s=args.gap,
                   thumbnails=Path(args.thumbnails) if args.thumbnails else None,
                   photo=Path(args.photo) if args.photo else None)


def cmd_relabel(args) -> int:
    from .index.query import run_relabel
    return run_relabel(Path(args.index), Path(args.gallery))


def cmd_demo(args) -> int:
    from .lab.demo import run_demo
    return run_demo(out_dir=Path(args.out), headless=args.headless, camera=args.camera)


# -- helpers -------------------------------------------------------------------------------
def _config(args) -> RunConfig:
    return RunConfig(source=str(args.source), detector=args.detector, landmarks=args.landmarks,
                     landmark_backend=args.landmark_backend, embedder=args.embedder,
                     threshold=args.threshold, gallery=Path(args.gallery),
                     headless=args.headless, output=_path(args.output),
                     events=_path(args.events), events_on=args.events_on,
                     reconnect=args.reconnect, max_frames=args.max_frames,
                     detect_every=args.detect_every, sync_embed=args.sync_embed,
                     side_by_side=args.side_by_side, smooth=not args.no_smooth,
                     threads=args.threads, speed=0.0 if args.fast else args.speed,
                     loop=args.loop, record_status=args.record_status,
                     progress=not args.no_progress and sys.stderr.isatty())


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Real-time face landmarks and recognition.",
        epilog=_exit_codes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_run, _add_serve, _add_enroll, _add_people, _add_index, _add_who,
                _add_relabel, _add_bench, _add_eval, _add_demo, _add_models):
        add(sub)
    return parser


def _exit_codes_help() -> str:
    import textwrap
    return "exit codes:\n" + "\n".join(
        textwrap.fill(f"{code:<4} {text}", width=79, initial_indent="  ",
                      subsequent_indent=" " * 7, break_on_hyphens=False)
        for code, text in EXIT_CODES.items())


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="process a camera, video or image (run_video.py)",
                         description="Detect, landmark and recognise faces. Keys in the "
                         "window: q/Esc quit, l landmarks cnn/dlib/both, s side by side, "
                         "e enrol (click a face to choose it), u undo this window's last "
                         "enrolment, space pause, . or n one frame on, p screenshot, "
                         "b status bar, h help. A file plays at its own frame rate in "
                         "the window and stays on its last picture until q.")
    run.add_argument("--source", default="0", type=_source,
                     help="camera index, device path, stream URL, video or image file "
                          "[%(default)s]")
    _model_options(run)
    _recognition_options(run)
    run.add_argument("--landmark-backend", choices=LANDMARK_BACKENDS, default="tflite",
                     help="how the CNN runs: .tflite (ai-edge-litert), or frozen .pb or "
                     "SavedModel (both import TensorFlow, seconds to start) [%(default)s]")
    run.add_argument("--side-by-side", action="store_true",
                     help="start in the CNN | dlib side-by-side view (key s)")
    run.add_argument("--no-smooth", action="store_true", help="show raw landmarks (default: "
                     "One Euro filter per tracked face, see app/stages/smooth.py)")
    run.add_argument("--headless", action="store_true", help="no window")
    run.add_argument("--output", metavar="FILE.mp4", help="write the annotated video "
                     "(the picture without the window's status bar)")
    run.add_argument("--record-status", action="store_true", help="--output also records "
                     "the status bar")
    _service_options(run)
    run.add_argument("--reconnect", action="store_true", help="reopen a lost camera or "
                     "stream with backoff (0.5 s doubling to 30 s) until it is back, instead "
                     "of ending the run (serve always does)")
    run.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    pace = run.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=_positive_float, metavar="X", help="play a file at X "
                      "times its frame rate, in a window [1; headless runs always go as fast "
                      "as they can]")
    pace.add_argument("--fast", action="store_true", help="play a file as fast as the "
                      "machine allows, also in a window")
    run.add_argument("--loop", action="store_true", help="play a video file again from the "
                     "start each time it ends (q quits)")
    run.add_argument("--detect-every", type=int, default=0, metavar="K", help="run the "
                     "face detector every K frames and at once after a cut or a lost face; "
                     "between, boxes follow the landmarks [0: the measured default]; 1: every "
                     "frame")
    run.add_argument("--sync-embed", action="store_true", help="run FaceNet on the frame "
                     "path (the reference for bench --reference) instead of on its own "
                     "thread")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (video "
                     "files, re-embedding the gallery after an embedder change)")
    run.set_defaults(handler=cmd_run)


def _add_serve(sub) -> None:
    serve = sub.add_parser("serve", help="the browser view: watch, name and manage people "
                           "from any browser (HTTP API, MJPEG, WebSocket)",
                           description="Run the pipeline of `run` behind a web page and a "
                           "JSON API (see README, The browser view). Bound to 127.0.0.1 by "
                           "default, with no token; any other --host needs a token.")
    serve.add_argument("--source", default="0", type=_source, help="camera index, device "
                       "path, stream URL or video file [%(default)s]; a lost camera or "
                       "stream is reopened with backoff")
    serve.add_argument("--loop", action="store_true", help="play a video file again from "
                       "the start each time it ends")
    serve.add_argument("--fast", action="store_true", help="process every frame of a file "
                       "as fast as the machine allows (default: at its own frame rate, as a "
                       "camera: frames a slow machine cannot take in time are dropped)")
    _model_options(serve)
    _recognition_options(serve)
    _service_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on "
                       "[%(default)s]; 0.0.0.0 for every interface (needs a token)")
    serve.add_argument("--port", type=int, default=8000, help="[%(default)s]")
    serve.add_argument("--token", help="the bearer token every request must carry (also "
                       "$FACELANDMARKS_TOKEN; a ?token= in a URL sets a cookie)")
    serve.add_argument("--token-file", metavar="FILE", help="read the token from FILE")
    serve.set_defaults(handler=cmd_serve)


def _add_enroll(sub) -> None:
    enroll = sub.add_parser("enroll", help="enrol a person from photos (one face each)",
                            description="Enrol a person from photos that each show exactly "
                            "one face; all photos are checked before anything is stored.")
    enroll.add_argument("--name", required=True, help="the person's name")
    enroll.add_argument("photos", nargs="+", metavar="PHOTO")
    enroll.add_argument("--force", action="store_true", help="enrol even if the face already "
                        "matches another enrolled person")
    _model_options(enroll)
    enroll.set_defaults(handler=cmd_enroll)


def _add_people(sub) -> None:
    people = sub.add_parser("people", help="list, remove or rename enrolled people",
                            description="people list | people remove NAME | "
                            "people rename OLD NEW")
    _gallery_option(people)
    people.add_argument("action", choices=("list", "remove", "rename"), nargs="?")
    people.add_argument("names", nargs="*", metavar="NAME")
    people.set_defaults(handler=_people_checked)


def _add_index(sub) -> None:
    index = sub.add_parser("index", help="index video files and folders into appearances "
                           "(who appears when), on local workers or a Ray cluster",
                           description="Decode each video in order (PTS times), track and "
                           "embed its faces, and write DIR/appearances.parquet (one row per "
                           "track: file, person, start_s, end_s, best_s, similarity, "
                           "thumbnail, mean embedding) and a status per file. Exit 1 when a "
                           "file failed (the others are indexed).")
    index.add_argument("paths", nargs="+", metavar="PATH", help="video files, or folders "
                       "(searched recursively for video suffixes)")
    index.add_argument("--out", required=True, metavar="DIR", help="the index folder")
    _gallery_option(index)
    index.add_argument("--detector", choices=DETECTORS, default="blazeface",
                       help="face detector [%(default)s]")
    _embedder_option(index)
    index.add_argument("--workers", type=int, metavar="N", help="worker processes (one "
                       "thread each) [one per core, capped by memory; Ray: the cluster's CPUs]")
    index.add_argument("--fps", type=float, metavar="F", help="process at most F frames per "
                       "second of video (every frame is still decoded) [every frame]")
    index.add_argument("--detect-every", type=int, default=0, metavar="K", help="run the "
                       "face detector every K processed frames and at once after a cut or a "
                       "lost face, as run does [0: run's measured default]; 1: every frame")
    index.add_argument("--cluster", metavar="ray[://HOST:PORT]", help="run the workers as Ray "
                       "actors: on a local Ray started for the run (ray), or on a cluster "
                       "(ray://HOST:PORT, or $RAY_ADDRESS)")
    index.add_argument("--resume", action="store_true", help="continue the index in DIR: "
                       "skip files already done (same size, mtime and models)")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.set_defaults(handler=cmd_index)


def _add_who(sub) -> None:
    who = sub.add_parser("who", help="when and where a person appears, from an index",
                         description="A person's appearances (file, start_s, end_s, best_s, "
                         "similarity) from an index alone; no video is decoded.")
    who.add_argument("name", nargs="?", help="an enrolled person's name (any case)")
    who.add_argument("--photo", metavar="PHOTO", help="instead of a name: the face in this "
                     "photo (its largest central face), enrolled or not")
    who.add_argument("--index", required=True, metavar="DIR")
    who.add_argument("--json", action="store_true", help="one JSON object per line")
    who.add_argument("--gap", type=float, default=1.0, metavar="S", help="join the person's "
                     "tracks less than S seconds apart into one appearance [%(default)s]")
    who.add_argument("--thumbnails", metavar="DIR", help="also write each appearance's best "
                     "face (a small JPEG from the index) into DIR")
    who.set_defaults(handler=cmd_who)


def _add_relabel(sub) -> None:
    relabel = sub.add_parser("relabel", help="name an index's tracks again against the "
                             "gallery (after enrolling someone), without decoding video")
    relabel.add_argument("--index", required=True, metavar="DIR")
    _gallery_option(relabel)
    relabel.set_defaults(handler=cmd_relabel)


def _add_bench(sub) -> None:
    bench = sub.add_parser("bench", help="FPS, stage ms, memory and naming on a video file, "
                           "optionally against face_recognition in the same run")
    bench.add_argument("--source", required=True, help="video file")
    bench.add_argument("--gallery", help="an existing gallery (default: enrol --enroll "
                       "photos, or the clip's labels file's, into a temporary one)")
    bench.add_argument("--enroll", action="append", metavar="NAME=PHOTO",
                       help="person to enrol for both sides (repeatable)")
    bench.add_argument("--vs", choices=("face_recognition",), help="also run this peer "
                       "(install it with: make bench-deps)")
    bench.add_argument("--repeat", type=_positive_int, default=3, help="runs of each, alternating "
                       "[%(default)s]")
    _embedder_option(bench)
    bench.add_argument("--realtime", action="store_true", help="play the file through the "
                       "camera path at its own frame rate (frames not taken in time are "
                       "dropped); adds capture->display latency p50/p95/p99/max and dropped "
                       "frames")
    bench.add_argument("--reference", action="store_true", help="also run ours as the "
                       "reference (run --detect-every 1 --sync-embed), alternating; reports "
                       "each of its tracks' first-found and first-named frame against ours")
    bench.add_argument("--baseline", metavar="DIR", help="also run another checkout of this "
                       "project (an earlier commit, with its .venv and models) with its "
                       "defaults, alternating, and compare its tracks with ours the same way")
    bench.set_defaults(handler=cmd_bench)


def _add_eval(sub) -> None:
    evaluate = sub.add_parser("eval", help="accuracy measurements")
    eval_sub = evaluate.add_subparsers(dest="what", metavar="WHAT", required=True)
    for add in (_add_eval_verify, _add_eval_landmarks, _add_eval_smoothing):
        add(eval_sub)


def _add_eval_verify(eval_sub) -> None:
    verify = eval_sub.add_parser("verify", help="verification and identification accuracy on "
                                 "a folder of per-person folders")
    verify.add_argument("--data", required=True, help="folder with one folder per person")
    verify.add_argument("--embedder", default=DEFAULT_EMBEDDER, metavar="NAMES",
                        help=f"{_EMBEDDER_HELP}; a comma list, or all [%(default)s]")
    verify.add_argument("--pairs", metavar="CSV", help="score only these pairs (header "
                        "file_a,file_b,same[,fold]; paths relative to --data); with a fold "
                        "column: k-fold accuracy, threshold from the other folds")
    verify.add_argument("--tune-pairs", metavar="CSV", help="choose the threshold on these "
                        "pairs (default: the embedder's own threshold)")
    verify.add_argument("--vs", choices=("face_recognition",), help="also score the peer's "
                        "own pipeline on the same pairs (install it with: make bench-deps)")
    verify.add_argument("--crop", choices=CROPS, help="crop for every embedder (default: "
                        "each family's own, app.stages.embed.FAMILIES)")
    verify.add_argument("--cache", metavar="FILE", help="keep each photo's landmarks here "
                        "(a pickle) to compare crops quickly; delete it when models change")
    verify.add_argument("--scores", metavar="FILE", help="write each pair's scores (CSV)")
    verify.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    verify.set_defaults(handler=cmd_eval)


def _add_eval_landmarks(eval_sub) -> None:
    marks = eval_sub.add_parser("landmarks", help="landmark NME, failure rate and ms/face on "
                                "photos with iBUG .pts annotations")
    marks.add_argument("--data", required=True, help="folder of .jpg + .pts "
                       "(e.g. ../shared/data/landmarks300w/test)")
    marks.add_argument("--landmarks", nargs="+", choices=LANDMARK_MODELS, default=["cnn"],
                       help="landmark models to score [cnn]")
    marks.add_argument("--boxes", nargs="+", choices=("hog", "blazeface", "gt"),
                       default=["hog"], help="where face boxes come from [hog]")
    marks.add_argument("--threads", type=_threads, default=min(2, _max_threads()),
                       help="CNN threads [%(default)s]")
    marks.add_argument("--landmark-backend", choices=LANDMARK_BACKENDS, default="tflite",
                       help="how the CNN runs [%(default)s]")
    marks.add_argument("--limit", type=_positive_int, help="only the first N photos")
    marks.add_argument("--plot", metavar="FILE.png", help="cumulative NME curve of every "
                       "model and box source given")
    marks.set_defaults(handler=cmd_eval_landmarks)


def _add_eval_smoothing(eval_sub) -> None:
    smooth = eval_sub.add_parser("smoothing", help="landmark jitter on a still face and lag "
                                 "on a moving one, raw vs smoothed (synthetic clips of photos)")
    smooth.add_argument("--data", required=True, help="folder of .jpg + .pts")
    smooth.add_argument("--photos", type=_positive_int, default=10,
                        help="photos used [%(default)s]")
    smooth.add_argument("--frames", type=_positive_int, default=60,
                        help="frames per clip [%(default)s]")
    smooth.add_argument("--speed", type=_positive_float, default=0.5,
                        help="moving clip speed, face sizes per second at 30 FPS [%(default)s]")
    smooth.add_argument("--sensor-noise", type=float, default=3.0,
                        help="still clip pixel noise sigma, grey levels [%(default)s]")
    smooth.add_argument("--detector", choices=("blazeface", "hog"), default="blazeface")
    smooth.add_argument("--landmarks", nargs="+", choices=LANDMARK_MODELS,
                        default=list(LANDMARK_MODELS), help="landmark models, each measured "
                        "on the same clips [cnn dlib]")
    smooth.add_argument("--min-cutoff", type=float, help="One Euro min cutoff, Hz")
    smooth.add_argument("--beta", type=float, help="One Euro beta")
    smooth.set_defaults(handler=cmd_eval_smoothing)


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="the webcam if one opens, else a demo built from the "
                          "5-celebrity photos (what `make demo` runs)")
    demo.add_argument("--out", default="out/demo", help="output folder [%(default)s]")
    demo.add_argument("--headless", action="store_true", help="no window")
    demo.add_argument("--camera", default="0", help="camera to try first [%(default)s]; "
                      "'none' skips it")
    demo.set_defaults(handler=cmd_demo)


def _add_models(sub) -> None:
    models = sub.add_parser("models", add_help=False,
                            help="check the model files (models check), or build, verify, "
                            "export and train them (the toolchain: needs TensorFlow)")
    models.add_argument("argv", nargs=argparse.REMAINDER)
    models.set_defaults(handler=cmd_models)


_EMBEDDER_HELP = ("FaceNet family-variant: casia-|keras- then int8|dynint8|fp16|fp32|pb "
                  "(a bare variant means casia-)")


def _family_thresholds() -> str:
    from .stages.embed import FAMILIES
    return ", ".join(f"{f.name} {f.threshold:g}" for f in FAMILIES.values())


def _model_options(parser: argparse.ArgumentParser) -> None:
    _gallery_option(parser)
    parser.add_argument("--detector", choices=DETECTORS, default="blazeface",
                        help="face detector [%(default)s]")
    _embedder_option(parser)
    parser.add_argument("--threads", type=_threads, default=default_threads(),
                        help="threads per model [%(default)s: a quarter of the cores, at "
                        "least 1; four models run at once]")


def _recognition_options(parser: argparse.ArgumentParser) -> None:
    """What run and serve share beyond the models: the landmark mode and the threshold."""
    parser.add_argument("--landmarks", choices=LANDMARK_MODES, default="cnn",
                        help="landmark model(s) [%(default)s]")
    parser.add_argument("--threshold", type=float,
                        help="cosine similarity below which a face is unknown [the embedder "
                             "family's: " + _family_thresholds() + "]")


def _service_options(parser: argparse.ArgumentParser) -> None:
    """What run and serve share for running as a service: the events."""
    parser.add_argument("--events", metavar="FILE.jsonl", help="write JSON lines: '-' is "
                        "standard output (the human summary then goes to stderr); a camera, "
                        "stream or serve appends to FILE as frames come (follow it with "
                        "tail -F), a video file's run moves it into place at the end")
    parser.add_argument("--events-on", choices=EVENTS_ON, default="frame",
                        help="a line per processed frame, or only when a track appears, is "
                        "named, changes name or ends [%(default)s]")


def _gallery_option(parser: argparse.ArgumentParser) -> None:
    """``--gallery``; not given: the default path, found after parsing
    (:func:`_default_gallery`), so an unusable HOME fails only the commands that need it."""
    try:
        default = str(default_gallery_path())
    except ValueError:
        default = "none: HOME is not an absolute folder"
    parser.add_argument("--gallery", help=f"gallery database [{default}]")
    parser.set_defaults(gallery_default=True)


def _default_gallery(args) -> None:
    """The default ``--gallery`` where it was not given (ValueError naming --gallery when
    HOME is unusable)."""
    if getattr(args, "gallery_default", False) and args.gallery is None:
        args.gallery = str(default_gallery_path())


# -- argument types: argparse reports their ValueError as "argument --x: ..." (exit 2) --------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}"
                                         + (" (--fast plays as fast as it can)"
                                            if value == 0 else ""))
    return value


def _threads(text: str) -> int:
    try:
        return check_threads(int(text), "threads")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("threads ")) from exc


def _max_threads() -> int:
    from .config import max_threads
    return max_threads()


def _source(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a camera index (0), a device, a "
                                         "video or image file, or a stream URL")
    return text


def _embedder_option(parser: argparse.ArgumentParser, extra: tuple[str, ...] = ()) -> None:
    more = "".join(f", or {name}" for name in extra)
    parser.add_argument("--embedder", choices=(*EMBEDDERS, *extra), default=DEFAULT_EMBEDDER,
                        metavar="NAME", help=f"{_EMBEDDER_HELP}{more} [%(default)s]")


def _people_checked(args) -> int:
    usage = {"list": "list", "remove": "remove NAME", "rename": "rename OLD NEW"}
    if args.action is None:
        print(f"error: say what to do: {PROG} people list | people remove NAME | people "
              f"rename OLD NEW", file=sys.stderr)
        return EXIT_BAD_INPUT
    wanted = {"list": 0, "remove": 1, "rename": 2}[args.action]
    if len(args.names) != wanted:
        print(f"error: usage: {PROG} people {usage[args.action]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return cmd_people(args)
