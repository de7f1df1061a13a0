"""No stream credential in any output: URL passwords and secret query values masked.

:func:`mask_urls` hides, in any text, the user-info part of every ``scheme://`` URL
(everything up to the URL's last ``@``, so a raw ``@``, ``/`` or ``:`` in the password
is hidden too: ``rtsp://cam:p@ss/w@host`` -> ``rtsp://cam:***@host``) and the value of
every query or fragment parameter whose name says it is secret (``?pwd=``,
``password=``, ``token=``, ``key=``, ``auth=``, ``sig=``...).

:func:`secrets_of` lists the literal secrets of one URL in every spelling a library
may print (as given, %-decoded, %-encoded); :func:`masked_native_stderr` runs a block
(OpenCV or FFmpeg opening a stream, which print their own error lines with the URL in
them) with the process's standard error (file descriptor 2) caught, and prints what
was caught afterwards with those secrets and every URL credential masked.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from urllib.parse import quote, unquote

MASK = "***"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*://"
_USERINFO = re.compile(rf"({_SCHEME})(\S*)@")   # greedy: up to the URL's last @
_SECRET_NAME = r"[^=&;#?\s]*(?:pass|pwd|token|secret|key|auth|sig|cred|session|login)" \
               r"[^=&;#?\s]*"
_SECRET_PARAM = re.compile(rf"([?&;#]{_SECRET_NAME}=)([^&;#\s]*)", re.IGNORECASE)
_lock = threading.Lock()


def mask_urls(text: str) -> str:
    """``text`` with every URL's user-info password and secret query values masked."""
    text = _USERINFO.sub(_mask_userinfo, str(text))
    return _SECRET_PARAM.sub(lambda m: m.group(1) + (MASK if m.group(2) else ""), text)


def _mask_userinfo(match: re.Match) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    user, colon, _ = userinfo.partition(":")
    # "user:password@": keep the user (unless it looks like a path); "token@": all hidden
    keep = colon and "/" not in user and "?" not in user
    return f"{scheme}{user}:{MASK}@" if keep else f"{scheme}{MASK}@"


def secrets_of(url: str) -> list[str]:
    """The literal secrets in ``url`` (its password, or whole user-info when it has no
    ``:``, and secret query values), each as given, %-decoded and %-encoded; longest
    first so a longer one is masked before a part of it."""
    found: set[str] = set()
    match = _USERINFO.search(str(url))
    if match:
        user, colon, password = match.group(2).partition(":")
        found.add(password if colon else user)
    found.update(m.group(2) for m in _SECRET_PARAM.finditer(str(url)))
    spelled = {form for secret in found if secret
               for form in (secret, unquote(secret), quote(secret, safe=""),
                            quote(unquote(secret), safe=""))}
    return sorted((s for s in spelled if len(s) >= 2), key=len, reverse=True)


def mask_text(text: str, secrets: list[str]) -> str:
    """``text`` with every URL credential (:func:`mask_urls`) and each of ``secrets``
    masked."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return mask_urls(text)


@contextmanager
def masked_native_stderr(url: str):
    """Run the block with file descriptor 2 caught in a temporary file, then write what
    was caught to the real standard error with the URL's secrets masked (native
    libraries write there directly, past ``sys.stderr``). Does nothing where fd 2
    cannot be duplicated."""
    secrets = secrets_of(url)
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield
            return
        caught = tempfile.TemporaryFile()
        try:
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                caught.seek(0)
                text = caught.read().decode("utf-8", "replace")
                if text:
                    os.write(2, mask_text(text, secrets).encode("utf-8", "replace"))
        finally:
            os.close(saved)
            caught.close()
