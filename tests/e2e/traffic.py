"""Continuous HTTPS traffic through the lab's lb, recorded request by request, for tests that inject faults.

`Traffic(base_url, cafile, paths)` runs `workers` threads, each with its own keep-alive connection, that
request the paths in turn until stopped; every response is recorded with its time, path, status and whether
the body is JSON. Tests read the recording: errors (5xx, timeouts, connection failures), responses that are
not JSON, the window in which errors happened, and the throughput of a path in a time window. Requests go
only to the lab's own lb address, bounded by `max_seconds`.

With a `Write`, every n-th request is a POST whose answer names what it created, so that tests can count
lost writes. Like browsers, a request that fails on a reused keep-alive connection before any byte of an
answer (the server had closed the idle connection: nginx does on every reload) is sent once more on a new
connection; those are counted in `resent` and named in the summary, never hidden in the error count.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable


@dataclasses.dataclass(frozen=True)
class Response:
    """One request: when it finished (monotonic), its path, status (0: no HTTP answer), JSON body or not."""

    at: float
    path: str
    status: int
    is_json: bool
    seconds: float
    method: str = "GET"
    #: For a write answered 201: the id of what it created (the test checks it was not lost).
    created: int | None = None
    #: Why there was no HTTP answer (the exception), for the test's report.
    error: str = ""


#: How a reused keep-alive connection that the server had closed fails before any byte of an answer.
#: (RemoteDisconnected when reading the status line; SSLEOFError when sending on a closed TLS connection.)
_CLOSED_BEFORE_ANSWER = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
                         ssl.SSLZeroReturnError)


@dataclasses.dataclass(frozen=True)
class Write:
    """A write the traffic sends every `every` requests: POST `path` with `body()` as the bearer of `token`.

    `created(body)` returns the id the answer names, so that lost writes can be counted afterwards.
    """

    path: str
    token: str
    body: Callable[[], dict]
    created: Callable[[dict], int]
    every: int = 5


class Traffic:
    """Threads requesting `paths` round-robin over HTTPS until `stop()` (or `max_seconds`)."""

    def __init__(self, host: str, cafile: str, paths: Iterable[str], workers: int = 8, timeout: float = 10.0,
                 max_seconds: float = 300.0, write: Write | None = None, pace: float | None = None) -> None:
        self.host, self.paths, self.workers, self.timeout = host, list(paths), workers, timeout
        #: Requests/s offered in total, spread over the workers; None: as fast as the stack answers. A paced
        #: load leaves the machine's CPU to what the test measures (a deploy, a restore) instead of saturating it.
        self.pace = pace
        self.write = write
        self.context = ssl.create_default_context(cafile=cafile)
        self.max_seconds = max_seconds
        self.responses: list[Response] = []
        #: Requests sent again because an idle keep-alive connection was closed before answering them.
        self.resent: list[tuple[float, str, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Traffic:
        self.started = time.monotonic()
        for index in range(self.workers):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        self._threads.clear()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, 443, timeout=self.timeout, context=self.context)

    def _run(self, index: int) -> None:
        connection, turn, used = self._connect(), index, False
        deadline = self.started + self.max_seconds
        interval = self.workers / self.pace if self.pace else 0.0
        # Workers start spread over one interval, so a paced load arrives evenly rather than in bursts.
        slot = self.started + interval * index / self.workers
        while not self._stop.is_set() and time.monotonic() < deadline:
            if interval:
                if self._stop.wait(max(0.0, slot - time.monotonic())):
                    break
                slot = max(slot + interval, time.monotonic() - interval)
            path, method, payload, headers = self.paths[turn % len(self.paths)], "GET", None, {}
            if self.write is not None and turn % self.write.every == 0:
                path, method = self.write.path, "POST"
                payload = json.dumps(self.write.body()).encode()
                headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.write.token}"}
            turn += 1
            began = time.monotonic()
            status, is_json, created, failure = 0, False, None, ""
            for attempt in (1, 2):
                reused, answered = used, False
                try:
                    connection.request(method, path, body=payload, headers=headers)
                    reply = connection.getresponse()
                    answered = True
                    body = reply.read()
                    status, failure = reply.status, ""
                    used = True
                    try:
                        document = json.loads(body)
                        is_json = True
                        if method == "POST" and status == 201 and self.write is not None:
                            created = self.write.created(document)
                    except ValueError:
                        is_json = False
                    if reply.getheader("Connection", "").lower() == "close":
                        connection.close()
                        connection, used = self._connect(), False
                    break
                except (OSError, http.client.HTTPException) as error:
                    failure = f"{type(error).__name__}: {error} ({'reused' if reused else 'new'} connection)"
                    connection.close()
                    connection, used = self._connect(), False
                    # A keep-alive connection the server closed while idle (nginx does on every reload) fails
                    # before any answer: browsers send the request again on a new connection, once.
                    if attempt == 1 and reused and not answered and isinstance(error, _CLOSED_BEFORE_ANSWER):
                        with self._lock:
                            self.resent.append((time.monotonic(), method, path, type(error).__name__))
                        continue
                    break
            finished = time.monotonic()
            with self._lock:
                self.responses.append(Response(finished, path, status, is_json, finished - began, method, created,
                                               failure))
        connection.close()

    # --- reading the recording -------------------------------------------------------------------------

    def created(self) -> list[int]:
        """Ids of everything the writes created (answered 201)."""
        return [r.created for r in self.snapshot() if r.created is not None]

    def writes(self) -> list[Response]:
        return [r for r in self.snapshot() if r.method != "GET"]

    def snapshot(self) -> list[Response]:
        with self._lock:
            return list(self.responses)

    def statuses(self) -> Counter[int]:
        return Counter(response.status for response in self.snapshot())

    def errors(self, since: float = 0.0) -> list[Response]:
        """Responses that are not an answer the client can use: no HTTP answer, or a 5xx."""
        return [r for r in self.snapshot() if r.at >= since and (r.status == 0 or r.status >= 500)]

    def not_json(self, since: float = 0.0) -> list[Response]:
        """HTTP answers whose body is not JSON (an HTML error page, an empty body)."""
        return [r for r in self.snapshot() if r.at >= since and r.status != 0 and not r.is_json]

    def rate(self, start: float, end: float, paths: Iterable[str] | None = None, ok_only: bool = True) -> float:
        """Answers per second of `paths` (default: all) finished between start and end (200s only by default)."""
        wanted = set(paths) if paths is not None else None
        count = sum(1 for r in self.snapshot() if start <= r.at < end and (wanted is None or r.path in wanted)
                    and (r.status == 200 or not ok_only))
        return count / max(end - start, 1e-9)

    def error_window(self, since: float = 0.0) -> float:
        """Seconds from the first to the last error since `since` (0 when there was at most one)."""
        errors = self.errors(since)
        return errors[-1].at - errors[0].at if len(errors) > 1 else 0.0

    def summary(self, since: float = 0.0) -> str:
        """One line for the test report and the issue notes."""
        responses = [r for r in self.snapshot() if r.at >= since]
        counts = Counter(r.status for r in responses)
        writes = sum(1 for r in responses if r.method != "GET")
        seconds = (responses[-1].at - responses[0].at) if len(responses) > 1 else 0.0
        return (f"{len(responses)} requests ({writes} writes) in {seconds:.1f} s "
                f"({len(responses) / max(seconds, 1e-9):.0f} req/s), statuses {dict(sorted(counts.items()))}, "
                f"{len(self.errors(since))} errors in {self.error_window(since):.2f} s, "
                f"{len(self.not_json(since))} not JSON, "
                f"{sum(1 for entry in self.resent if entry[0] >= since)} sent again after an idle keep-alive "
                "connection closed")
