"""Pacing per number: a minimum gap between sends and a ceiling per minute.

Unofficial WhatsApp numbers get banned for machine-like bursts. Every send of one number passes this
gate; typing indicators run before it, per contact, so a contact's typing delay never holds up another
contact's message — only the moment of sending is spaced out.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable


def pacing_from_env() -> tuple[float, int]:
    """(minimum gap in seconds, sends per minute; 0 = no limit) from WORKBENCH_SEND_MIN_GAP_MS and
    WORKBENCH_SENDS_PER_MINUTE."""
    gap_ms = int(os.environ.get("WORKBENCH_SEND_MIN_GAP_MS") or 1000)
    per_minute = int(os.environ.get("WORKBENCH_SENDS_PER_MINUTE") or 40)
    return max(gap_ms, 0) / 1000, max(per_minute, 0)


class Pacer:
    """Decides when the next send of one number may go out. Thread-safe."""

    def __init__(self, min_gap_s: float, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap_s = min_gap_s
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()  # send times of the last minute

    def delay(self) -> float:
        """Seconds to wait before the next send may go (0 when it may go now)."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= 60:
                self._sent.popleft()
            wait = 0.0
            if self._sent and self.min_gap_s:
                wait = max(wait, self._sent[-1] + self.min_gap_s - now)
            if self.per_minute and len(self._sent) >= self.per_minute:
                wait = max(wait, self._sent[-self.per_minute] + 60 - now)
            return max(wait, 0.0)

    def record(self) -> None:
        """Note that a send just went out."""
        with self._lock:
            self._sent.append(self._clock())

    def wait(self, stop: threading.Event) -> bool:
        """Block until a send may go; False when ``stop`` was set meanwhile."""
        while (pause := self.delay()) > 0:
            if stop.wait(pause):
                return False
        return not stop.is_set()
