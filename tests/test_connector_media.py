"""The content-addressed media store, and the all-or-nothing file write it shares with the spool."""

from __future__ import annotations

import hashlib

import pytest

from connector.files import replace_file
from connector.media import MediaError, MediaTooLarge, load_media, media_path, store_media

DATA = b"GIF89a" + bytes(range(200))


def test_store_is_content_addressed_and_idempotent(tmp_path):
    ref = store_media(tmp_path, DATA, "image/gif", "gato.gif", max_bytes=1024)
    sha = hashlib.sha256(DATA).hexdigest()
    assert ref.model_dump() == {"sha256": sha, "mime": "image/gif", "size": len(DATA), "filename": "gato.gif"}
    path = media_path(tmp_path, sha)
    assert path == tmp_path / "media" / sha[:2] / sha
    assert load_media(tmp_path, sha) == DATA
    again = store_media(tmp_path, DATA, "image/gif", "outro.gif", max_bytes=1024)
    assert again.sha256 == sha and again.filename == "outro.gif"
    assert [p.name for p in path.parent.iterdir()] == [sha], "no temporary file left behind"


def test_a_file_name_never_becomes_a_path(tmp_path):
    assert store_media(tmp_path, DATA, "image/gif", "../../etc/passwd", max_bytes=1024).filename == "passwd"
    assert store_media(tmp_path, DATA, "image/gif", "..\\x\\y.gif", max_bytes=1024).filename == "y.gif"
    assert store_media(tmp_path, DATA, "", None, max_bytes=1024).mime == "application/octet-stream"


def test_too_large_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(MediaTooLarge, match="exceeds"):
        store_media(tmp_path, DATA, "image/gif", max_bytes=10)
    assert not (tmp_path / "media").exists()


def test_the_size_cap_comes_from_the_settings(tmp_path, settings_env):
    settings_env(WORKBENCH_MEDIA_MAX_MB="1")
    with pytest.raises(MediaTooLarge):
        store_media(tmp_path, b"x" * (1024 * 1024 + 1), "application/octet-stream")


def test_digests_are_checked_before_they_touch_the_file_system(tmp_path):
    with pytest.raises(MediaError, match="not a sha256"):
        media_path(tmp_path, "../../etc/passwd")
    with pytest.raises(MediaError, match="not in the store"):
        load_media(tmp_path, "0" * 64)


def test_a_file_is_replaced_all_or_nothing(tmp_path):
    path = tmp_path / "1.jid.json"
    replace_file(path, '{"user": "5511990000001"}')
    replace_file(path, "ação".encode())
    assert path.read_text() == "ação"
    with pytest.raises(TypeError):
        replace_file(path, 42)  # type: ignore[arg-type]  # fails after the temporary file was made
    assert path.read_text() == "ação", "the old file stays whole"
    assert [p.name for p in tmp_path.iterdir()] == ["1.jid.json"], "no temporary file left behind"
