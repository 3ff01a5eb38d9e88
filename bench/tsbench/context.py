"""What every part gets: the lab, the settings, an HTTP client, a log, and shared fixtures made on demand."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .data import Employer, make_employer
from .hosts import BenchLab
from .http import Client
from .settings import Settings


@dataclass
class Bench:
    """The harness state one run shares between parts."""

    lab: BenchLab
    settings: Settings
    run: dict[str, Any]
    _client: Client | None = field(default=None, init=False)
    _employer: Employer | None = field(default=None, init=False)
    part_started: float = field(default_factory=time.monotonic, init=False)

    def start_part(self) -> None:
        """The part budget counts from here."""
        self.part_started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the current part started."""
        return time.monotonic() - self.part_started

    def fits(self, next_seconds: float) -> bool:
        """Whether work expected to take `next_seconds` (the last round's duration) still ends within the
        part's budget: a part stops starting rounds it cannot finish in time instead of overrunning."""
        return self.elapsed() + next_seconds <= self.settings.part_budget_seconds

    def budget_note(self, planned: int, done: int, unit: str = "rounds", cut_by_budget: bool | None = None,
                    budget_seconds: float | None = None) -> dict[str, Any]:
        """What a part records about its rounds, so the report can say when the budget cut them short
        (`budget_seconds`: a share of the part's budget, when the part splits it)."""
        budget = self.settings.part_budget_seconds if budget_seconds is None else round(budget_seconds)
        return {"planned": planned, "done": done, "unit": unit, "budget_seconds": budget,
                "cut_by_budget": done < planned if cut_by_budget is None else cut_by_budget}

    def log(self, message: str) -> None:
        """Progress on stderr (results go to the JSON file)."""
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    @property
    def client(self) -> Client:
        """JSON client to the lb, verifying with the lab CA."""
        if self._client is None:
            self._client = Client(self.lab.lb_url(), self.lab.ca_file())
        return self._client

    def employer(self) -> Employer:
        """The bench employer (registered once per data set; reseeding forgets it)."""
        if self._employer is None:
            self._employer = make_employer(self.lab, self.client)
        return self._employer

    def forget_employer(self) -> None:
        """The tables were emptied: the next employer() registers a new one."""
        self._employer = None

    def app_metric(self, name: str) -> float:
        """Sum of a counter over the app hosts' own /metrics (read on each host: port 8000 is closed to us)."""
        total = 0.0
        for host in ("app1", "app2"):
            address = self.lab.hosts[host]
            text = self.lab.ssh(host, "python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request."
                                      f"urlopen(\"http://{address}:8000/metrics\").read().decode())'")
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith(name) and not line.startswith("#"))
        return total
