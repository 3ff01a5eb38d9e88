"""pyinfra entry point of a rolling deploy's second phase: activate the planned release on the limited hosts.

    tsdeploy deploy inventories/lab   (runs it with --limit <app host> for each host or batch in turn)

TSDEPLOY_ROLL names a JSON file of activation plans (host -> roles.app.live.Plan) written by the first phase.
"""

import json
import os
import pathlib

from pyinfra import host

from roles.app.live import Plan
from roles.app.roll import roll
from roles.registry import role
from roles.runtime import start_run

start_run()

plans = json.loads(pathlib.Path(os.environ["TSDEPLOY_ROLL"]).read_text())
if role("app").runs_on(host.groups) and host.name in plans:
    roll(Plan.from_json(plans[host.name]))
