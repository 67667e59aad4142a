"""Each process's impressions waiting for Redis.

A served list costs its request a JSON record appended to an in-memory list (microseconds);
a daemon thread of the process pushes what has gathered to the Redis buffer every
PUSH_INTERVAL_SECONDS in one pipelined call (at most PUSH_BATCH records at once), and the
process pushes what is left when it exits normally. `impressions_flush` moves the Redis buffer
to the database (feedback.services).

What a push could not deliver (Redis down) stays pending, up to PENDING_MAX records per
process, the oldest dropped first, with a warning; pushes are retried every
RETRY_SECONDS. A process killed outright (SIGKILL, OOM) loses at most its last
PUSH_INTERVAL_SECONDS of lists.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import threading
import time

import redis

logger = logging.getLogger(__name__)

PUSH_INTERVAL_SECONDS = 0.25
PUSH_BATCH = 5_000
PENDING_MAX = 20_000
RETRY_SECONDS = 5.0
_REDIS_TIMEOUT_SECONDS = 0.5

# (Redis URL, buffer key, max length of the Redis buffer, record)
Pending = tuple[str, str, int, bytes]


@functools.cache
def redis_client(url: str, *, timeout_seconds: float | None = None) -> redis.Redis:
    """One client (and connection pool) per URL and timeout in a process: the pusher thread
    (short timeouts: a push must not hang on a dead Redis) and the flush (feedback.services)
    reuse theirs. redis-py gives a forked child connections of its own."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
    )


class PendingImpressions:
    """The records of one process that are not in Redis yet. Thread-safe; after a fork the
    child starts empty with a pusher thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()  # one push at a time (the thread, an exit, a flush)
        self._records: collections.deque[Pending] = collections.deque()
        self._wake = threading.Event()
        self._pid: int | None = None
        self._retry_at = 0.0
        self._dropped = 0
        self._exit_registered = False

    def append(self, *, url: str, key: str, limit: int, record: bytes) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            self._records.append((url, key, limit, record))
            if len(self._records) > PENDING_MAX:
                self._records.popleft()
                self._dropped += 1
            if len(self._records) >= PUSH_BATCH:
                self._wake.set()

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._retry_at = 0.0

    def push(self) -> int:
        """Push the pending records to Redis now; returns how many were delivered. Never
        raises: what Redis refused stays pending, with a warning."""
        delivered = 0
        with self._push_lock:
            while True:
                with self._lock:
                    size = min(PUSH_BATCH, len(self._records))
                    batch = [self._records.popleft() for _ in range(size)]
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    logger.warning(
                        "%d impression records dropped: Redis took none for a while and more "
                        "than %d were pending in this process",
                        dropped,
                        PENDING_MAX,
                    )
                if not batch:
                    return delivered
                try:
                    self._send(batch)
                except Exception:
                    with self._lock:
                        self._records.extendleft(reversed(batch))
                        self._retry_at = time.monotonic() + RETRY_SECONDS
                    logger.warning(
                        "impressions not pushed to Redis (%d pending; retrying in %.0f s)",
                        len(self._records),
                        RETRY_SECONDS,
                        exc_info=True,
                    )
                    return delivered
                delivered += len(batch)

    def _send(self, batch: list[Pending]) -> None:
        by_buffer: dict[tuple[str, str, int], list[bytes]] = {}
        for url, key, limit, record in batch:
            by_buffer.setdefault((url, key, limit), []).append(record)
        for (url, key, limit), records in by_buffer.items():
            client = redis_client(url, timeout_seconds=_REDIS_TIMEOUT_SECONDS)
            send = client.pipeline(transaction=False)
            send.rpush(key, *records)
            send.ltrim(key, -limit, -1)  # bounded while no flush runs
            send.execute()

    def _start(self) -> None:
        """Called under the lock by the first append of this process."""
        if not self._exit_registered:
            atexit.register(self.push)  # inherited by forked children
            self._exit_registered = True
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="impressions-push", daemon=True).start()

    def after_fork_in_child(self) -> None:
        """The parent's records, connections and locks (perhaps held by one of its threads at
        the fork) are the parent's: start afresh."""
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()
        self._records = collections.deque()
        self._wake = threading.Event()
        redis_client.cache_clear()
        self._pid = None
        self._retry_at = 0.0
        self._dropped = 0

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._wake.wait(PUSH_INTERVAL_SECONDS)
            self._wake.clear()
            if self._records and time.monotonic() >= self._retry_at:
                self.push()


pending = PendingImpressions()
os.register_at_fork(after_in_child=pending.after_fork_in_child)
