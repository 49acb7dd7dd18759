"""Writing the connector's files all or nothing: the spool, the paired device's JID, the media store.

A crash (or a full disk) in the middle of a write must never leave half a file where a whole one is read
later, so every file the connector replaces goes through ``replace_file``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` all or nothing: a temporary file beside it, synced, then
    renamed over it. A reader sees the old file or the new one, never a part; a failed write leaves the old
    file and no temporary one."""
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
