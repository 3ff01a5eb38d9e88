"""`tsdeploy smoke INVENTORY`: check through the lb over HTTPS that the API is ready; print its URL.

The TLS handshake is verified against the inventory's CA (`tls_ca_cert_file`): a wrong certificate fails the
smoke check just like an unready app does. Progress goes to stderr, the URL to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import ssl
import time
import urllib.error
import urllib.request

import click

from roles.nginx.context import site_ca
from roles.registry import Group
from tsdeploy.inventory import Inventory, InventoryError, load

READY_PATH = "/health/ready"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the API answers: the lb's HTTPS URL and the CA file that verifies its certificate (None: the
    system's trust store, for a certificate from a public ACME CA)."""

    url: str
    ca_file: str | None


def endpoint(inventory: Inventory) -> Endpoint:
    """The first lb host's public URL: nginx_server_name unless it is the catch-all `_`, else its address."""
    lb_hosts = inventory.hosts_in(Group.LB)
    if not lb_hosts:
        raise click.ClickException(f"{inventory.path}: group 'lb' has no hosts; fix: add the nginx host to it")
    hostvars = inventory.hostvars[lb_hosts[0]]
    name = hostvars.get("nginx_server_name", "_")
    address = name if name != "_" else hostvars.get("ansible_host") or hostvars["private_address"]
    ca_file = site_ca(hostvars)
    if hostvars.get("nginx_acme_directory"):
        return Endpoint(url=f"https://{address}/", ca_file=ca_file)
    if not ca_file or not pathlib.Path(ca_file).is_file():
        raise click.ClickException(f"{lb_hosts[0]}: tls_ca_cert_file={ca_file!r} is not a readable file; fix: "
                                   "point it at the CA certificate that signed the lb's certificate")
    return Endpoint(url=f"https://{address}/", ca_file=ca_file)


def check_ready(target: Endpoint, timeout: float) -> dict:
    """GET /health/ready until it answers 200 or `timeout` seconds pass; return its JSON body."""
    context = ssl.create_default_context(cafile=target.ca_file)
    url = target.url.rstrip("/") + READY_PATH
    deadline, last = time.monotonic() + timeout, "no answer yet"
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}: {error.read()[:200]!r}"
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            raise click.ClickException(f"{url} did not answer 200 within {timeout:.0f} s (last: {last})")
        time.sleep(1)


@click.command("smoke")
@click.argument("inventory", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True, metavar="SECONDS",
              help="How long to wait for /health/ready to answer 200.")
def smoke(inventory: pathlib.Path, vault_password_file: str | None, timeout: float) -> None:
    """Check through the lb over HTTPS (verified with the inventory's CA) that /health/ready answers 200,
    then print the API's URL."""
    try:
        loaded = load(inventory, vault_password_file=vault_password_file)
    except InventoryError as error:
        raise click.ClickException(f"the inventory {inventory} is not valid:\n{error}") from None
    target = endpoint(loaded)
    body = check_ready(target, timeout)
    click.echo(f"==> {target.url.rstrip('/')}{READY_PATH} answered 200: {json.dumps(body)}", err=True)
    click.echo(target.url)
