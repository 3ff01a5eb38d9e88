"""A peer's inventory name resolving to its private address on this host (an /etc/hosts line).

pgBackRest's TLS client checks the server certificate's CN and DNS names only, never an IP address SAN, so
the db host and the backup host reach each other by inventory name (the certificates' CN); this line makes
that name resolve without depending on DNS. One line per peer, replaced when the address changes.
"""

from __future__ import annotations

import re

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files


def resolve_peer(name: str, address: str, why: str) -> OperationMeta:
    """Ensure `/etc/hosts` maps `name` to `address` (a line for `name` with another address is replaced)."""
    return files.line(name=f"Resolve {name} to its private address {address} ({why})", path="/etc/hosts",
                      line=rf"^[0-9a-fA-F.:]+\s+{re.escape(name)}$", replace=f"{address}\t{name}")
