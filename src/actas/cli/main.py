"""The ``actas`` command line. Each command parses options and calls one library function.

Exit codes: 0 success; 1 verification failed (something does not hold); 2 usage error; 3 bad input or a
problem reading or writing data (an ActasError, printed with its code).
"""

from __future__ import annotations

import sys

import click

from actas.cli import (
    commands,
    crosscheck_commands,
    mirror_commands,
    observe_commands,
    scan_commands,
    service_commands,
    station_commands,
    witness_commands,
)
from actas.cli.output import console
from actas.errors import ActasError

EXIT_FAILED, EXIT_USAGE, EXIT_ERROR = 1, 2, 3


def main() -> None:
    """Entry point: run the CLI and map errors to exit codes in one place."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except ActasError as exc:
        console.print(f"[red]error[/red] ({exc.code}): {exc}")
        sys.exit(EXIT_ERROR)
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        console.print(f"[red]error[/red]: {exc}")
        sys.exit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="actas")
def cli() -> None:
    """actas: election results with their tally sheets, in a public, verifiable log."""


for command in [
    *commands.ALL,
    *crosscheck_commands.COMMANDS,
    *mirror_commands.COMMANDS,
    *observe_commands.COMMANDS,
    *scan_commands.COMMANDS,
    *service_commands.COMMANDS,
    *station_commands.COMMANDS,
    *witness_commands.COMMANDS,
]:
    cli.add_command(command)
