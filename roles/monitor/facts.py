"""What `tsdeploy status` reads on the monitor host: answers of Prometheus's HTTP API to PromQL queries.

Prometheus listens on 127.0.0.1 of the monitor host only, so the control node cannot ask it directly: it runs
`pyinfra INVENTORY fact roles.monitor.facts.PrometheusQueries queries=<JSON> --json` (read-only,
tsdeploy.deployment.read_fact) and this fact's command asks Prometheus on the host itself. The hosts have
python3 but no curl: the command ships `fetch` below (standard library only, Python 3.9 or newer, so Debian 11's
python3 runs it too) to python3 on the host, base64-encoded so that no PromQL quote or brace meets a shell.
`tsdeploy status` calls the same `fetch` directly when Prometheus is reachable from where it runs (its tests),
so both ways share one program. No sudo and no secret: the API needs neither.

The command always exits 0 and reports a failure in its data (as roles/backup/facts.py does): a failed fact
command fails the host in pyinfra, and the reason (connection refused, python3 missing) would be lost.
"""

from __future__ import annotations

import base64
import inspect
import json
import shlex
from collections.abc import Mapping
from typing import Any

from pyinfra.api import FactBase

from roles.monitor.context import PROMETHEUS_LISTEN

#: Where Prometheus listens on the monitor host (the monitor role binds it there, and only there).
PROMETHEUS_URL = f"http://{PROMETHEUS_LISTEN}"
#: Seconds for each HTTP request to Prometheus (its own query timeout is 2 minutes: ours must be shorter).
TIMEOUT = 10.0


def fetch(base_url, request):  # noqa: ANN001, ANN201  (shipped as source to the host's python3: no annotations)
    """Ask the Prometheus at `base_url` every query of `request`, at one evaluation time, and its alerts.

    `request`: {"queries": {name: PromQL}, "alerts": bool, "timeout": seconds}. The answer:

        {"time": <evaluation time, epoch s>, "error": None,
         "results": {name: {"samples": [{"metric": {labels}, "value": [time, "<number>"]}, ...]}
                          | {"error": "<Prometheus's message>"}},
         "alerts": [<Prometheus's /api/v1/alerts entries>] | {"error": ...} | None}

    "error" is set (and the rest partial) when Prometheus did not answer at all.
    """
    import json
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    timeout = float(request.get("timeout", 10))

    def get(path, params=None):
        url = base_url.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return json.loads(response.read().decode())
        except urllib.error.HTTPError as error:
            # A query Prometheus refuses (bad_data, 400; execution errors, 422) answers with its reason as JSON.
            try:
                return json.loads(error.read().decode())
            except ValueError:
                return {"status": "error", "error": "HTTP %s %s" % (error.code, error.reason)}

    def failure(body):
        return {"error": "%s: %s" % (body.get("errorType", "error"), body.get("error", "no reason given"))}

    # One evaluation time for every query, so that ratios and per-host rows describe the same moment.
    now = time.time()
    answer = {"time": now, "results": {}, "alerts": None, "error": None}
    try:
        for name, query in request["queries"].items():
            body = get("/api/v1/query", {"query": query, "time": repr(now)})
            if body.get("status") == "success":
                answer["results"][name] = {"samples": body["data"]["result"]}
            else:
                answer["results"][name] = failure(body)
        if request.get("alerts"):
            body = get("/api/v1/alerts")
            answer["alerts"] = body["data"]["alerts"] if body.get("status") == "success" else failure(body)
    except (OSError, ValueError) as error:  # URLError, refused, timeout; ValueError: not Prometheus's JSON
        answer["error"] = "%s did not answer: %s" % (base_url, getattr(error, "reason", None) or error)
    return answer


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def command_for(request: Mapping[str, Any], base_url: str = PROMETHEUS_URL) -> str:
    """The shell command that runs `fetch(base_url, request)` with the host's python3 and prints its JSON.

    Base64 only (letters, digits, + / =) reaches the shell; the program's own errors (python3 missing, a
    traceback) are folded into the output before the exit status line.
    """
    # python3 -c: sys.argv is ["-c", program, url, request].
    program = (inspect.getsource(fetch) + "\nimport base64, json, sys\n"
               "print(json.dumps(fetch(sys.argv[2], json.loads(base64.b64decode(sys.argv[3])))))\n")
    return (f"python3 -c \"import base64, sys; exec(base64.b64decode(sys.argv[1]))\" {_b64(program)} "
            f"{shlex.quote(base_url)} {_b64(json.dumps(dict(request)))} 2>&1; rc=$?; echo; echo \"rc=$rc\"")


def parse_output(output: list[str]) -> dict[str, Any]:
    """PrometheusQueries' output: fetch's JSON, then "rc=N"; anything else becomes the answer's error.

    >>> parse_output(['{"time": 1.0, "results": {}, "alerts": null, "error": null}', "rc=0"])["error"] is None
    True
    >>> parse_output(["sh: 1: python3: not found", "rc=127"])["error"]
    'the query program exited 127 on the monitor host: sh: 1: python3: not found'
    """
    status = int(output[-1][3:] or 1) if output and output[-1].startswith("rc=") else 1
    lines = [line for line in (output[:-1] if output and output[-1].startswith("rc=") else output) if line.strip()]
    if status == 0 and len(lines) == 1:
        try:
            return json.loads(lines[0])
        except json.JSONDecodeError:
            pass
    text = " ".join(lines)[-2000:] or "(no output)"
    return {"time": None, "results": {}, "alerts": None,
            "error": f"the query program exited {status} on the monitor host: {text}"}


class PrometheusQueries(FactBase):
    """Prometheus's answers to named PromQL instant queries (one evaluation time) and its alerts.

    .. code:: python

        {"time": 1796094160.2, "error": None,
         "results": {"up": {"samples": [{"metric": {"job": "node", "host": "db1", ...}, "value": [..., "1"]}]},
                     "bad": {"error": "bad_data: 1:4: parse error: ..."}},
         "alerts": [{"labels": {"alertname": ...}, "annotations": {...}, "state": "firing", ...}]}
        {"time": None, "results": {}, "alerts": None, "error": "http://127.0.0.1:9090 did not answer: ..."}

    `queries` is a {name: PromQL} mapping (pyinfra's CLI decodes a JSON argument into one); `alerts` asks
    /api/v1/alerts as well.
    """

    def command(self, queries: Mapping[str, str] | str, alerts: bool = True, timeout: float = TIMEOUT,
                url: str = PROMETHEUS_URL) -> str:
        if isinstance(queries, str):  # a JSON text pyinfra's CLI did not decode (it decodes what it can)
            queries = json.loads(queries)
        return command_for({"queries": dict(queries), "alerts": bool(alerts), "timeout": float(timeout)}, url)

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_output(output)
