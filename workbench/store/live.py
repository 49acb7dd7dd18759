"""Change counters that let live views skip work: a page re-reads only when its workspace changed."""

from __future__ import annotations

from collections.abc import Iterable

from redis.client import Pipeline

REVISION_KEY = "wb:rev:{}"


def touch(redis_client, workspace_ids: Iterable[int]) -> None:
    """Bump the revision of each workspace whose rows just changed (after commit).

    ``redis_client`` may be a pipeline: the commands are then only added to it, and its owner executes it.
    """
    ids = list(workspace_ids)
    if not ids:
        return
    pipe = redis_client if isinstance(redis_client, Pipeline) else redis_client.pipeline(transaction=False)
    for workspace_id in ids:
        pipe.incr(REVISION_KEY.format(workspace_id))
    if pipe is not redis_client:
        pipe.execute()


def revision(redis_client, workspace_id: int) -> int:
    """The workspace's current revision (0 when never touched)."""
    value = redis_client.get(REVISION_KEY.format(workspace_id))
    return int(value) if value else 0
