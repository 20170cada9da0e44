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


def _echo_data_warnings(caught: list) -> None:
    """Data warnings as one line each on stderr (not Python's two-line warning format)."""
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)


@cli.group()
def datasets() -> None:
    """Embedded real datasets and checks of your own K-line files.

    \b
    Examples:
      kronos-synth datasets list
      kronos-synth datasets show sp500-daily
      kronos-synth datasets check my_prices.csv --strict
      kronos-synth datasets export goog-daily --out goog.parquet
    """


@datasets.command("list")
def datasets_list() -> None:
    """List the embedded datasets (name, symbol, frequency, rows, first, last, source).

    \b
    Example:
      kronos-synth datasets list
    """
    from kronos_synth.data.datasets import list_datasets

    rows = [
        (d.name, d.symbol, d.frequency, str(d.rows), str(d.first), str(d.last), d.source)
        for d in list_datasets()
    ]
    head = ("name", "symbol", "frequency", "rows", "first", "last", "source")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@datasets.command("show")
@click.argument("source")
@click.option("--freq", default=None, help="Frequency preset for cleaning (default: inferred).")
@click.option("--rows", "n_rows", default=5, show_default=True, help="Rows of head and tail to print.")
def datasets_show(source: str, freq: str | None, n_rows: int) -> None:
    """Info, head/tail, statistics and cleaning report of a dataset NAME or a FILE.

    \b
    Example:
      kronos-synth datasets show eurusd-1h
      kronos-synth datasets show data/BTCUSDT_15m.csv --freq 15min
    """
    import warnings

    import pandas as pd

    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.datasets import dataset_info, dataset_names
    from kronos_synth.data.describe import describe_klines
    from kronos_synth.data.frequency import get_preset, infer_frequency
    from kronos_synth.data.readers import load_klines

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_klines(source)
    _echo_data_warnings(caught)
    preset = get_preset(freq) if freq else infer_frequency(df)
    if source in dataset_names():
        info = dataset_info(source)
        click.echo(f"{info.name}: {info.description}  [{info.source}]")
    click.echo(f"{len(df)} rows, {df['symbol'].nunique()} symbol(s), frequency {preset.name}")
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        click.echo(df.head(n_rows).to_string())
        click.echo("…")
        click.echo(df.tail(n_rows).to_string(header=False))
        click.echo("\nstatistics (log returns of close):")
        click.echo(describe_klines(df).to_string(index=False))
    click.echo("")
    click.echo(clean_klines(df, preset).report.summary())


@datasets.command("check")
@click.argument("file")
@click.option("--strict", is_flag=True, help="Treat high/low not covering open/close as an error.")
@click.option("--freq", default=None, help="Frequency preset for the cleaning report (default: inferred).")
@click.option("--window", type=int, default=None, help="Fail unless some symbol has at least this many rows.")
def datasets_check(file: str, strict: bool, freq: str | None, window: int | None) -> None:
    """Validate a K-line FILE (CSV, CSV.gz, Parquet) and print what cleaning would do.

    Exit code 2 with one line naming file, column and row when the file cannot be used.

    \b
    Example:
      kronos-synth datasets check prices.csv --strict --window 216
    """
    import warnings

    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.frequency import get_preset, infer_frequency
    from kronos_synth.data.readers import inspect_klines
    from kronos_synth.data.validation import require_rows

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df, reports = inspect_klines(file, strict=strict)
    _echo_data_warnings(caught)
    if window is not None:
        require_rows(df, window, file=file, what=f"window of {window} bars")
    for report in reports:
        click.echo(report.summary())
    preset = get_preset(freq) if freq else infer_frequency(df)
    click.echo(clean_klines(df, preset).report.summary())


@datasets.command("export")
@click.argument("name")
@click.option("--out", "out", required=True, help="Output file: .csv, .csv.gz or .parquet.")
def datasets_export(name: str, out: str) -> None:
    """Write an embedded dataset NAME to a file (written to a temp name, then renamed).

    \b
    Example:
      kronos-synth datasets export sp500-daily --out sp500.parquet
    """
    from kronos_synth.data.datasets import load_dataset
    from kronos_synth.data.writers import write_klines

    df = load_dataset(name)
    write_klines(df, out)
    click.echo(f"wrote {len(df)} rows to {out}")


# --- generate ---------------------------------------------------------------------------------

# --- evaluate ---------------------------------------------------------------------------------

# --- baseline ---------------------------------------------------------------------------------

# --- train ------------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
