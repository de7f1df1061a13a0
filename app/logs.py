"""Quiet run path: native libraries' INFO chatter off, their warnings and errors kept.

OpenCV reads its log level from the environment when it loads, so ``quiet_defaults``
sets it (``setdefault``: a user's own setting wins) before it is imported; likewise
TensorFlow's, although TF 2.21 prints its start-up INFO lines (oneDNN, CUDA stubs,
CPU features) before reading it. Those, and the TFLite runtime's "INFO: Created
TensorFlow Lite XNNPACK delegate" (printed once per process on the first tensor
allocation), go straight to file descriptor 2: :func:`filtered_stderr` catches that
descriptor around such calls and writes back every line that is not INFO.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager

ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "1",      # TF: warnings and above
                "OPENCV_LOG_LEVEL": "WARNING"}
TFLITE_INFO = ("INFO:",)
TF_INFO = ("I0000 ", "WARNING: All log messages before absl::InitializeLog()",
           "To enable the following instructions")
_caught_tflite_banner = False


def quiet_defaults() -> None:
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


@contextmanager
def filtered_stderr(drop: tuple[str, ...]):
    """Native code's stderr lines starting with ``drop`` dropped; the rest re-emitted after
    the block, so no warning or error is lost."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, IDEs)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(True)
                    if not line.startswith(drop)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@contextmanager
def without_native_info():
    """Around a TFLite tensor allocation: its one-time INFO banner dropped (only the first
    block is caught; the runtime prints it once per process)."""
    global _caught_tflite_banner
    if _caught_tflite_banner:
        yield
        return
    _caught_tflite_banner = True
    with filtered_stderr(TFLITE_INFO):
        yield


def import_tensorflow():
    """``import tensorflow`` without its start-up INFO lines (pb/saved_model backends)."""
    with filtered_stderr(TF_INFO):
        import tensorflow as tf
    return tf
