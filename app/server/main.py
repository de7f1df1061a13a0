"""``facelandmarks serve``: the pipeline on its own thread, uvicorn on the main thread.

Order of a start: the access rules (a public address without a token is refused,
exit 2), the port (bound here, so "in use" is a clear exit 2), then the source, gallery
and models on the pipeline thread (what fails there exits 2 as ``run`` does), then
uvicorn. Ctrl-C or SIGTERM: uvicorn stops taking requests, the open streams and
WebSockets end within a second, the pipeline thread finishes and closes the models and
the gallery; a stop asked for this way exits 0 (it is how a service ends).
"""
from __future__ import annotations

import errno
import signal
import socket
import sys
from dataclasses import dataclass

from ..config import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, RunConfig
from .access import AccessError, AccessPolicy

GRACEFUL_S = 2   # how long uvicorn waits for open connections once a stop is asked


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    pace: bool = True        # a file plays at its own frame rate (--fast: as fast as it can)


def serve(config: RunConfig, options: ServeOptions) -> int:
    from ..session import human_output

    with human_output(config):   # --events -: the JSON lines own standard output
        return _serve(config, options)


def _serve(config: RunConfig, options: ServeOptions) -> int:
    from ..outputs.files import OutputError
    from ..people.gallery import GalleryError
    from ..session import check_config_outputs
    from ..sources.capture import CameraError
    from .live import LiveService

    try:
        check_config_outputs(config)
        policy = AccessPolicy.for_bind(options.host, options.token)
        sock = bind(options.host, options.port)
    except (AccessError, OutputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    service = LiveService(config, pace=options.pace)
    try:
        service.start()
    except (FileNotFoundError, GalleryError, ValueError, CameraError) as exc:
        sock.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        sock.close()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        _run_uvicorn(service, policy, sock, options)
    finally:
        service.stop()
    print(f"stopped after {service.loop.stats.frames} frames", file=sys.stderr)
    return EXIT_OK


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or an OSError saying plainly what is wrong."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"port {port} on {host} is in use (another serve?): pick another "
                          f"with --port") from exc
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    return sock


def _run_uvicorn(service, policy: AccessPolicy, sock: socket.socket,
                 options: ServeOptions) -> None:
    import uvicorn

    from .routes import create_app

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            service.request_stop()   # streams and WebSockets end now, not in 2 s
            super().handle_exit(sig, frame)

    shown = f"[{options.host}]" if ":" in options.host else options.host
    token = "?token=YOUR_TOKEN" if policy.token else ""
    print(f"serving on http://{shown}:{options.port}/{token}  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(create_app(service, policy), log_level="warning", lifespan="off",
                            ws="websockets-sansio", timeout_graceful_shutdown=GRACEFUL_S,
                            access_log=False)
    # uvicorn re-raises the signal that stopped it once it has shut down; with Python's
    # default handlers that kills the process (SIGTERM) or raises KeyboardInterrupt before
    # the pipeline thread is stopped and the models and gallery closed. Handlers that
    # do nothing make that re-raise harmless.
    previous = {sig: signal.signal(sig, lambda signum, frame: None)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
