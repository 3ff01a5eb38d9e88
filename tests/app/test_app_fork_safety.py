"""A process forked from one that already used the database (Gunicorn's master under preload_app) gets
connections of its own: two processes on one PostgreSQL socket would interleave their protocol messages."""

from __future__ import annotations

import os

from sqlalchemy import text


def _backend_pid(engine) -> int:  # noqa: ANN001
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_forked_child_does_not_reuse_the_parents_pooled_connection(engine) -> None:  # noqa: ANN001
    parent_backend = _backend_pid(engine)  # the connection goes back to the pool, ready for reuse
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports its backend and exits without running pytest's teardown
        try:
            os.write(write, str(_backend_pid(engine)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_backend = int(pipe.read() or 0)
    os.waitpid(child, 0)
    assert child_backend not in (0, parent_backend)
    # The parent's pooled connection was left open by the child and still works.
    assert _backend_pid(engine) == parent_backend
