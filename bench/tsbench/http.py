"""HTTP against the lab's load balancer: a small JSON client (setup) and wrk (measurement).

Requests go to nginx over HTTPS. The JSON client verifies the lb's certificate with the lab CA; wrk does not
verify certificates at all, which changes nothing in the measured work (the TLS handshake is the same).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# wrk's Lua hook: one JSON line with throughput, latency percentiles (microseconds) and errors.
_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


class HTTPError(RuntimeError):
    """A setup request got an unexpected status."""


@dataclass
class Client:
    """JSON over HTTPS to `base` (https://lb), certificate checked against `ca_file`."""

    base: str
    ca_file: str

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None,
                expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        """Send one request and return the decoded JSON body (HTTPError on another status)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        context = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(request, context=context, timeout=120) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        if status not in expect:
            raise HTTPError(f"{method} {path} answered {status}: {payload[:300]!r}")
        return json.loads(payload) if payload else {}


def wrk(url: str, seconds: float, connections: int, threads: int = 2, token: str | None = None) -> dict[str, Any]:
    """Run wrk against `url`; returns requests/s, p50/p95/p99 in ms and error counts.

    A bearer token goes into a 0600 Lua file in a private temporary directory, never onto the command line.
    """
    with tempfile.TemporaryDirectory(prefix="tsbench-wrk-") as directory:
        script = Path(directory) / "hooks.lua"
        header = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(header + _WRK_DONE)
        process = subprocess.run(
            ["wrk", f"--threads={min(threads, connections)}", f"--connections={connections}",
             f"--duration={max(1, round(seconds))}s", "--timeout=10s", f"--script={script}", url],
            capture_output=True, text=True, timeout=seconds + 60, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {process.stderr[-500:]}")
    line = [text for text in process.stdout.splitlines() if text.startswith("{")][-1]
    raw = json.loads(line)
    duration = raw["duration_us"] / 1e6
    errors = sum(raw[key] for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {"rps": raw["requests"] / duration, "requests": raw["requests"], "p50_ms": raw["p50_us"] / 1000,
            "p95_ms": raw["p95_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
            "errors": errors, "status_errors": raw["status_errors"]}
