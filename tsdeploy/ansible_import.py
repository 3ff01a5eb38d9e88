"""Import ansible-core under pyinfra's gevent without a spurious traceback on stderr.

When first imported, ansible-core probes `socket.getaddrinfo` with an int subclass and expects an OSError
back; under gevent (pyinfra monkey-patches sockets) that probe runs in the hub's thread pool, and the hub
prints the expected error as a traceback before passing it on. `quietly()` imports ansible-core once with
the hub told that an OSError is not worth printing; pyinfra entry points call it before anything imports
ansible. This module imports neither ansible nor pyinfra itself.
"""

from __future__ import annotations


def quietly() -> None:
    """Import ansible-core's module that runs the probe, with gevent's hub not printing its OSError."""
    try:
        from gevent import get_hub
    except ImportError:  # not under gevent: nothing is printed
        import ansible.module_utils.datatag  # noqa: F401
        return
    hub = get_hub()
    saved = hub.NOT_ERROR
    hub.NOT_ERROR = (*saved, OSError)
    try:
        import ansible.module_utils.datatag  # noqa: F401
    finally:
        hub.NOT_ERROR = saved
