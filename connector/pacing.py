"""Pacing per number: a minimum gap between sends and a ceiling per minute.

Unofficial WhatsApp numbers get banned for machine-like bursts. Every send of one number passes this
gate; typing indicators run before it, per contact, so a contact's typing delay never holds up another
contact's message — only the moment of sending is spaced out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Pacer:
    """Decides when the next send of one number may go out. Thread-safe.

    Args:
        min_gap_s: shortest time between two sends (0 or less = none).
        per_minute: most sends within any 60 seconds (0 or less = no limit).
        clock: monotonic seconds; tests pass a fake.
    """

    def __init__(self, min_gap_s: float, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap_s = max(min_gap_s, 0.0)
        self.per_minute = max(per_minute, 0)
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()  # send times of the last minute

    @property
    def unpaced(self) -> bool:
        """Whether sends may go back to back (no gap, no ceiling)."""
        return not self.min_gap_s and not self.per_minute

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
        """Note that a send just went out (nothing to note for a number that sends unpaced)."""
        if self.unpaced:
            return
        with self._lock:
            self._sent.append(self._clock())

    def wait(self, stop: threading.Event) -> bool:
        """Block until a send may go; False when ``stop`` was set meanwhile."""
        while (pause := self.delay()) > 0:
            if stop.wait(pause):
                return False
        return not stop.is_set()
