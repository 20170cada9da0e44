"""The `kronos-synth` command line. Thin: parse arguments, call the library, print.

Every command is one library call a user can make from Python. Bad input (an `InputError`
or a click usage error) prints one line on stderr and exits 2; anything else exits 1.
"""

from __future__ import annotations

import sys

import click

from kronos_synth import __version__
from kronos_synth.data.errors import InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kronos-synth")
def cli() -> None:
    """Synthetic K-line data with Kronos, and an honest evaluation of it.

    \b
    Example:
      kronos-synth datasets list
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps bad input to exit 2 with one line, never a traceback."""
    try:
        rv = cli.main(args=argv, prog_name="kronos-synth", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        msg = e.format_message().replace("\n", " ")
        click.echo(f"error: {msg}", err=True)
        sys.exit(2 if isinstance(e, click.UsageError | click.BadParameter) else e.exit_code)
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


# Commands register themselves below, one section each, importing their library module lazily
# inside the command so `kronos-synth --help` stays fast.

# --- datasets ---------------------------------------------------------------------------------

# --- generate ---------------------------------------------------------------------------------

# --- evaluate ---------------------------------------------------------------------------------

# --- baseline ---------------------------------------------------------------------------------

# --- train ------------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
