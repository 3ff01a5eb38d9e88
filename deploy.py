"""pyinfra entry point: dispatch each role to its inventory group, nothing else.

    TSDEPLOY_INVENTORY=inventories/lab .venv/bin/pyinfra inventories/ansible.py deploy.py
    (or: tsdeploy deploy inventories/lab)
"""

from pyinfra import config, host

from roles.common import common
from roles.postgres import postgres
from roles.redis import redis

config.SUDO = True

common()
if "db" in host.groups:
    postgres()
if "cache" in host.groups:
    redis()
if "app" in host.groups:
    from roles.app import app

    app()
if "lb" in host.groups:
    from roles.nginx import nginx

    nginx()
