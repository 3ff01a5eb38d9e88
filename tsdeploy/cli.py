"""The `tsdeploy` command: one group, one subcommand per concern, each defined in its own module.

Logs and progress go to stderr, results to stdout.
"""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """TalentSphere Deploy: build lab hosts, deploy, verify, back up and restore, tune and generate configs."""


def _register() -> None:
    # Imported here so that `tsdeploy --help` lists every command and each module stays independent.
    from tsdeploy import lab

    cli.add_command(lab.lab)
    from tsdeploy import tune_cli

    cli.add_command(tune_cli.tune)
    from tsdeploy import generate

    cli.add_command(generate.generate)
    from tsdeploy import deployment

    cli.add_command(deployment.deploy)
    from tsdeploy import rollback

    cli.add_command(rollback.rollback)
    from tsdeploy import backup_cli

    for command in (backup_cli.backup, backup_cli.backups_command, backup_cli.restore, backup_cli.drill):
        cli.add_command(command)
    from tsdeploy import status

    cli.add_command(status.status)
    from tsdeploy import verify

    cli.add_command(verify.verify)
    from tsdeploy import smoke

    cli.add_command(smoke.smoke)
    from tsdeploy import rotate

    cli.add_command(rotate.rotate_secrets)


def main() -> None:
    _register()
    cli()
