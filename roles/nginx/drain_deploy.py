"""pyinfra entry point of a rolling deploy: take the app hosts in TSDEPLOY_DRAIN out of every lb's rotation.

TSDEPLOY_DRAIN lists upstream servers ("address:port", comma-separated); empty puts every app host back.
"""

import os

from pyinfra import host

from roles.nginx.drain import rotate
from roles.registry import role
from roles.runtime import start_run

start_run()

if role("nginx").runs_on(host.groups):
    rotate([entry for entry in os.environ.get("TSDEPLOY_DRAIN", "").split(",") if entry])
