"""Wrong API keys are throttled per client: after `max_failures` refused keys within `window_s`
seconds, every request from that client that presents a key is answered 429 with Retry-After
until the oldest of those failures is older than the window (issue 19 item 16: 800 guesses
met no limit). A correct key is refused too while the client is throttled, or the answer
would still tell a right guess from a wrong one.

A client is the peer address the ASGI server reports (behind a proxy, run uvicorn with
--proxy-headers and --forwarded-allow-ips so that it is the caller's, not the proxy's). Each
API process counts on its own; the counts live in memory (a restart forgets them), bounded to
`max_clients` addresses (the least recently failed are dropped first).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# 10 wrong keys a minute: a person mistyping never meets it; a script guessing keys (43
# random characters) gets 14,400 guesses a day instead of thousands a second.
MAX_FAILURES = 10
WINDOW_S = 60.0
MAX_CLIENTS = 10_000


class FailedKeyThrottle:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be at least 1 and window_s positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until `client` may present a key again; None when it may now."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times is None or len(times) < self.max_failures:
                return None
            # Free once the failure that filled the window has left it.
            oldest = times[len(times) - self.max_failures]
            return max(1, math.ceil(oldest + self.window_s - now))

    def record_failure(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.max_failures)
            times.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
