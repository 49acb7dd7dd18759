"""The connector's files: written all or nothing, and readable by their owner only.

A crash (or a full disk) in the middle of a write must never leave half a file where a whole one is read
later, so every file the connector replaces (the spool, the paired device's JID, the media store) goes through
``replace_file``. Those files hold message bodies, contacts' media and WhatsApp device keys, so each directory
they live in is made ``PRIVATE_DIR`` (``private_dir``) and each file ``PRIVATE_FILE``.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077
"""The umask every process of the product runs with (its entry points set it): new files are the owner's."""


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter: created when missing (with its parents), narrowed to
    ``PRIVATE_DIR`` when it exists with a wider mode. Returns ``path``."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        path.chmod(PRIVATE_DIR)
    return path


def private_files(*paths: Path) -> None:
    """Narrow existing files to ``PRIVATE_FILE`` (files a library created with the default mode); missing ones
    are skipped."""
    for path in paths:
        try:
            if stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE:
                path.chmod(PRIVATE_FILE)
        except FileNotFoundError:
            continue


def replace_file(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` all or nothing: a temporary file beside it, synced, then
    renamed over it. A reader sees the old file or the new one, never a part; a failed write leaves the old
    file and no temporary one. The file is ``PRIVATE_FILE`` (``mkstemp`` creates it so)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
