"""The deploy's roles, one folder each (see README.md); `registry.py` lists them with their groups and order.

Importing a role package (`roles.postgres`) gives its declarations (`ROLE`) without importing pyinfra; its
operations are in `roles/<name>/tasks.py`, which only the pyinfra run imports.
"""
