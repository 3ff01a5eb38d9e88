"""sshd hardening (ssh-baseline) in a drop-in, validated with `sshd -t` before reload; never locks us out."""

from __future__ import annotations

from pyinfra.operations import server, systemd

from roles.common import manifest
from roles.common.files import put_managed, put_path
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    user = ctx["common"]["deploy_user"]
    drop_in = put_managed(ctx, manifest.SSHD_DROP_IN,
                          name="Harden sshd: keys only, no root login, no forwarding (ssh-baseline)")
    put_path(ctx, manifest.SSHD_CONFIG)
    # Reload only when the config is valid AND the deploy user still has a key to log in with: a bad
    # drop-in must fail the deploy, never lock the deploying user out.
    check = server.shell(
        name=f"Check the sshd config with sshd -t and that {user} keeps an authorized key",
        commands=[f"sshd -t && test -s \"$(getent passwd {user} | cut -d: -f6)/.ssh/authorized_keys\""],
        _if=drop_in.did_change,
    )
    systemd.service(name="Reload sshd to apply the hardening", service="ssh", reloaded=True,
                    _if=lambda: drop_in.did_change() and check.did_succeed())
