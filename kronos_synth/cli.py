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
    import warnings

    # Warnings (e.g. bars whose high/low do not cover open/close) as one line each on stderr.
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
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


@cli.command()
@click.option("--n", "n", type=int, required=True, help="Number of synthetic sequences.")
@click.option("--freq", required=True, help="Bar frequency preset: 1min 5min 15min 30min 1h 4h daily weekly.")
@click.option("--data", default=None, help="K-line file (CSV/Parquet) or embedded dataset name.")
@click.option("--dataset", default=None, help="Embedded dataset name (see `datasets list`).")
@click.option("--model", default=None, help="Predictor: hub id (NeoQuasar/Kronos-small) or folder. "
              "Default: the embedded model.")
@click.option("--tokenizer", default=None, help="Tokenizer: hub id or folder (default: the model's own).")
@click.option("--lookback", type=int, default=None, help="Context bars (default: the frequency preset).")
@click.option("--horizon", type=int, default=None, help="Generated bars (default: the frequency preset).")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-p", type=float, default=0.95, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True, help="0 = off.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="train", show_default=True,
              help="Period the real contexts come from.")
@click.option("--contexts-per-symbol", type=int, default=None, help="Evenly spaced contexts per symbol "
              "(default: every window).")
@click.option("--samples-per-context", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=512, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N, mps.")
@click.option("--dtype", default="auto", show_default=True, help="auto (bf16 where fast), fp32, bf16.")
@click.option("--repair", is_flag=True, help="Raise high / lower low to cover open and close; floor volume "
              "and amount at 0 (raw violation counts are still reported).")
@click.option("--include-context", is_flag=True, help="Also write the real context bars (steps -L..-1).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dataset folder.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def generate(n: int, freq: str, data: str | None, dataset: str | None, model: str | None,
             tokenizer: str | None, lookback: int | None, horizon: int | None, temperature: float,
             top_p: float, top_k: int, seed: int, split: str, contexts_per_symbol: int | None,
             samples_per_context: int, batch_size: int, device: str, dtype: str, repair: bool,
             include_context: bool, out: str, progress: bool | None) -> None:
    """Generate synthetic K-line sequences with Kronos into a Parquet dataset (schema v1).

    \b
    Examples:
      kronos-synth generate --n 6000 --freq daily --out synth/
      kronos-synth generate --n 6000 --freq 15min --data BTCUSDT_15m.csv \\
          --model NeoQuasar/Kronos-small --out synth-btc/
    """
    from kronos_synth.generate.api import generate_dataset

    summary = generate_dataset(
        n=n, freq=freq, data=data, dataset=dataset, model=model, tokenizer=tokenizer, lookback=lookback,
        horizon=horizon, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, split=split,
        contexts_per_symbol=contexts_per_symbol, samples_per_context=samples_per_context,
        batch_size=batch_size, device=device, dtype=dtype, repair=repair, include_context=include_context,
        out=out, progress=progress, log=lambda line: click.echo(line, err=True))
    click.echo(summary.line())


# --- evaluate ---------------------------------------------------------------------------------

# --- baseline ---------------------------------------------------------------------------------

# --- train ------------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
