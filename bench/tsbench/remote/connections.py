"""Open N connections as the app's role at once (the app tier's full pool demand), hold them, count failures.

ARGS: {"connections": N, "hold_seconds": S}. Prints one JSON line: {"opened": n, "errors": {message: count}}.
"""

import json
import time

import psycopg2
from sqlalchemy.engine import make_url

from talentsphere.config import load_config

url = make_url(load_config()["DATABASE_URL"])
params = {"host": url.host, "port": url.port or 5432, "dbname": url.database, "user": url.username,
          "password": url.password, "connect_timeout": 10, "application_name": "tsbench-demand", **url.query}
opened, errors = [], {}
for _ in range(ARGS["connections"]):
    try:
        opened.append(psycopg2.connect(**params))
    except psycopg2.OperationalError as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        message = message.split("FATAL:")[-1].strip()
        errors[message] = errors.get(message, 0) + 1
time.sleep(ARGS["hold_seconds"])
for connection in opened:
    connection.close()
print(json.dumps({"opened": len(opened), "errors": errors}))
