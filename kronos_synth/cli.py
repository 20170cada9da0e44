"""The `kronos-synth` command line. Thin: parse arguments, call the library, print.

Every command is one library call a user can make from Python. Bad input (an `InputError`
or a click usage error) prints one line on stderr and exits 2; anything else exits 1. The library
names its parameters (`eval_every`); `in_cli_terms` shows them as the command's flags (`--eval-every`).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from kronos_synth import __version__
from kronos_synth.baselines import NAMES as BASELINE_NAMES
from kronos_synth.data.errors import InputError
from kronos_synth.progress import show_progress


class _Command(click.Command):
    """A command whose `InputError`s remember it (`cli_command`), so `main` can print them with its flags."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as e:
            e.cli_command = self
            raise


class _Group(click.Group):
    """Groups whose commands are `_Command`s and whose subgroups are `_Group`s."""

    command_class = _Command
    group_class = type


def command_flags(command: click.Command) -> dict[str, str]:
    """Parameter name → flag for the options of `command`: `eval_every` → `--eval-every`. An option stored
    under another name is found under both (`fmt` and `format` → `--format`)."""
    flags: dict[str, str] = {}
    for p in command.params:
        long = [o for o in p.opts if o.startswith("--")] if isinstance(p, click.Option) else []
        if long:
            for key in (p.name, *(o[2:].replace("-", "_") for o in long)):
                flags.setdefault(key, long[0])
    return flags


def in_cli_terms(error: InputError, command: click.Command | None) -> str:
    """The message of `error` with the parameters it names (`error.params`) shown as `command`'s flags.

    A message that writes a parameter as `name=value` marks its references that way, and only those
    change (`pass tokenizer=DIR` → `pass --tokenizer DIR`, while "no tokenizer is recorded" stays);
    otherwise every whole-word occurrence is the parameter (`eval_every must be positive` →
    `--eval-every must be positive`). Names inside paths, quotes or before a colon are left alone.
    """
    text = str(error)
    flags = command_flags(command) if command is not None else {}
    for name in error.params:
        flag = flags.get(name)
        if flag is None:
            continue
        word = rf"(?<![\w\-./\\'\"]){re.escape(name)}"
        keyword = re.compile(word + r"=(['\"]?)([^\s'\",;)]*)\1")
        if keyword.search(text):
            text = keyword.sub(lambda m, flag=flag: f"{flag} {m.group(2)}", text)
        else:
            text = re.sub(word + r"(?![\w\-/'\":]|\.\w)", flag, text)
    return text


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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

    from kronos_synth.generate.device import keep_freed_memory

    # Warnings (e.g. bars whose high/low do not cover open/close) as one line each on stderr.
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    keep_freed_memory()  # reuse freed activations instead of faulting fresh pages in (see the function)
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
        click.echo(f"error: {in_cli_terms(e, getattr(e, 'cli_command', None))}", err=True)
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
    from kronos_synth.data.sources import load_klines

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


SPREAD_HELP = ("σ of each path's log-temperature (mean kept at --temperature): paths differ in volatility as real "
               "continuations do; 0 = one temperature for all; auto = the candidate (0 to 0.6) with the lowest "
               "realised-volatility CRPS on validation contexts of the data (docs/models.md).")
VOL_SPREAD_HELP = ("σ of each path's log volatility scale (E[scale²] = 1): every price move of the path times it, its "
                   "shape kept (geometry models); 0 = off; auto as for --temperature-spread (docs/models.md).")


class SpreadParam(click.ParamType):
    """A temperature spread: a number, or "auto" (chosen on the data's validation contexts)."""

    name = "FLOAT|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"expected a number or 'auto', got {value!r}", param, ctx)


def resolve_auto_spread(settings: dict, data: str | None, model: str | None, tokenizer: str | None) -> None:
    """Replace each spread set to "auto" by the one `choose_spread` picks on `data` (temperature first)."""
    auto = [k for k in ("temperature_spread", "volatility_spread") if settings.get(k) == "auto"]
    if not auto:
        return
    from kronos_synth.data.sources import klines_for
    from kronos_synth.generate.conditional import KronosForecaster
    from kronos_synth.generate.config import GenerationConfig
    from kronos_synth.metrics.forecast_calibration import choose_spread
    from kronos_synth.model.pretrained import load_model_pair

    probe = GenerationConfig(**{**settings, **{k: 0.0 for k in auto}})  # validates the rest first
    klines, _ = klines_for(probe.freq, data)
    pair = load_model_pair(model, tokenizer)
    lookback, horizon = probe.window
    fixed = {k: 0.0 if k in auto else settings[k] for k in ("temperature_spread", "volatility_spread")}
    for key in auto:
        def at(s: float, key: str = key) -> KronosForecaster:
            return KronosForecaster(pair, freq=probe.freq, temperature=probe.temperature, top_p=probe.top_p,
                                    top_k=probe.top_k, batch_size=probe.batch_size, device=probe.device,
                                    dtype=probe.dtype, progress=False, **{**fixed, key: s})

        choice = choose_spread(klines, at, freq=probe.freq, lookback=lookback, horizon=horizon, seed=probe.seed,
                               test_fraction=probe.test_fraction, label=key.replace("_", " "))
        click.echo(choice.line(), err=True)
        settings[key] = fixed[key] = choice.spread


def _gen_default(name: str):
    """A generate option's default: the library's (GenerationConfig), written once."""
    from kronos_synth.generate.config import GenerationConfig

    return GenerationConfig.default(name)


@cli.command()
@click.option("--n", "n", type=int, required=True, help="Number of synthetic sequences.")
@click.option("--freq", required=True, help="Bar frequency preset: 1min 5min 15min 30min 1h 4h daily weekly.")
@click.option("--data", default=None, help="K-line file (CSV/Parquet) or embedded dataset name "
              "[default: the embedded dataset of --freq].")
@click.option("--dataset", default=None, help="Embedded dataset name (see `datasets list`).")
@click.option("--model", default=None, help="Predictor: hub id (NeoQuasar/Kronos-small) or folder. "
              "Default: the embedded model.")
@click.option("--tokenizer", default=None, help="Tokenizer: hub id or folder (default: the model's own).")
@click.option("--lookback", type=int, default=_gen_default("lookback"),
              help="Context bars (default: the frequency preset).")
@click.option("--horizon", type=int, default=_gen_default("horizon"),
              help="Generated bars (default: the frequency preset).")
@click.option("--temperature", type=float, default=_gen_default("temperature"), show_default=True)
@click.option("--top-p", type=float, default=_gen_default("top_p"), show_default=True)
@click.option("--top-k", type=int, default=_gen_default("top_k"), show_default=True, help="0 = off.")
@click.option("--temperature-spread", type=SpreadParam(), default=_gen_default("temperature_spread"),
              show_default=True, help=SPREAD_HELP)
@click.option("--volatility-spread", type=SpreadParam(), default=_gen_default("volatility_spread"),
              show_default=True, help=VOL_SPREAD_HELP)
@click.option("--seed", type=int, default=_gen_default("seed"), show_default=True)
@click.option("--split", type=click.Choice(["train", "test", "all", "train-head"]), default=_gen_default("split"),
              show_default=True, help="Period the real contexts come from. train-head: the train period before "
              "its last --test-fraction, to score against `evaluate --period validation`.")
@click.option("--contexts-per-symbol", type=int, default=_gen_default("contexts_per_symbol"),
              help="Evenly spaced contexts per symbol (default: every window).")
@click.option("--samples-per-context", type=int, default=_gen_default("samples_per_context"), show_default=True)
@click.option("--batch-size", type=int, default=_gen_default("batch_size"), show_default=True)
@click.option("--device", default=_gen_default("device"), show_default=True, help="auto, cpu, cuda, cuda:N, mps.")
@click.option("--dtype", default=_gen_default("dtype"), show_default=True, help="auto (bf16 where fast), fp32, bf16.")
@click.option("--repair", is_flag=True, default=_gen_default("repair"), help="Raise high / lower low to cover "
              "open and close; floor volume and amount at 0 (raw violation counts are still reported).")
@click.option("--include-context", is_flag=True, default=_gen_default("include_context"),
              help="Also write the real context bars (steps -L..-1).")
@click.option("--gaps", type=click.Choice(["context", "model"]), default=_gen_default("gaps"), show_default=True,
              help="context: where a context never gaps (every open equals the previous close, as in crypto "
              "exchange K-lines), the generated bars open at the previous close too. model: opens as sampled.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dataset folder.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: shard the parts over Ray workers (pip install \"kronos-synth[ray]\"); same output.")
@click.option("--address", default=None, help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001) "
              "[default: start a local one].")
@click.option("--num-workers", type=click.IntRange(min=1), default=None,
              help="Ray workers [default: as many as the cluster's CPUs / GPUs hold].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
              help="GPUs each Ray worker reserves (0.5 packs two per GPU) [default: 0].")
@click.option("--sequences-per-part", type=click.IntRange(min=1), default=_gen_default("sequences_per_part"),
              help="Sequences per Parquet part, the unit of resuming and of Ray sharding "
              "[default: max(batch size, 1024)].")
@click.option("--condition", default=None, help="Scenario condition the sequences must meet: volatility:Q1-Q2, "
              "return:Q1-Q2 (quantile bands of the real windows), drawdown:X (at least X, e.g. 0.1), "
              "regime:high-vol|low-vol|bull|bear (the context's regime). See docs/scenarios.md.")
@click.option("--scenario", type=click.Choice(["stress"]), default=None,
              help="stress: continuations of the top-decile-volatility contexts, with a VaR / ES report.")
@click.option("--max-tries", type=int, default=_gen_default("max_tries"), show_default=True,
              help="Conditioned runs: candidate paths per sequence at most.")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Conditioned runs: score the output against the real windows meeting the condition "
              "(discriminative error, path quantiles; VaR / ES for --scenario stress).")
@click.option("--panel", default=None, help="Coupled multi-asset panels of these symbols (comma-separated, from a "
              "multi-symbol --data); --n counts panels. See docs/scenarios.md.")
@click.option("--coupling", type=click.Choice(["gaussian", "t", "none"]), default=_gen_default("coupling"),
              show_default=True, help="Panels: Gaussian or Student-t (4 degrees of freedom: joint crashes) copula of "
              "the context's returns, or independent assets.")
@click.option("--volume-coupling/--no-volume-coupling", default=_gen_default("volume_coupling"), show_default=True,
              help="Panels: couple the assets' trading volume as well as their returns (a second coupled draw per "
              "step, with the context's log-volume-change correlation).")
def generate(n: int, data: str | None, dataset: str | None, model: str | None, tokenizer: str | None,
             out: str, progress: bool | None, engine: str, address: str | None, num_workers: int | None,
             gpus_per_worker: float | None, compare: bool, **settings) -> None:
    """Generate synthetic K-line sequences with Kronos into a Parquet dataset (schema v1).

    \b
    Examples:
      kronos-synth generate --n 6000 --freq daily --out synth/
      kronos-synth generate --n 6000 --freq 15min --out synth-15m/
      kronos-synth generate --n 6000 --freq 15min --data BTCUSDT_15m.csv \\
          --model NeoQuasar/Kronos-small --out synth-btc/
      kronos-synth generate --n 1000000 --freq daily --engine ray --address auto \\
          --gpus-per-worker 1 --out /shared/synth-1m/
      kronos-synth generate --n 2000 --freq daily --condition volatility:0.9-1 --out synth-volatile/
      kronos-synth generate --n 2000 --freq daily --scenario stress --out stress/
      kronos-synth generate --n 500 --freq 15min --data prices-15m.parquet \\
          --panel BTCUSDT,ETHUSDT,BNBUSDT,ADAUSDT --out panels/
    """
    from kronos_synth.generate.api import generate_dataset
    from kronos_synth.generate.config import GenerationConfig
    from kronos_synth.generate.ray_engine import RayConfig

    ray = None
    if engine == "ray":
        ray = RayConfig(address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker or 0.0)
    elif address is not None or num_workers is not None or gpus_per_worker is not None:
        raise click.UsageError("--address, --num-workers and --gpus-per-worker need --engine ray")
    resolve_auto_spread(settings, data if data is not None else dataset, model, tokenizer)
    config = GenerationConfig(**settings)
    summary = generate_dataset(config, n=n, data=data, dataset=dataset, model=model,
                               tokenizer=tokenizer, out=out, ray=ray, progress=progress,
                               log=lambda line: click.echo(line, err=True))
    click.echo(summary.line())
    if config.condition is not None:
        click.echo(summary.condition_line())
        if compare:
            from kronos_synth.data.sources import klines_for
            from kronos_synth.metrics.scenario import scenario_report

            klines, source = klines_for(config.freq, data if data is not None else dataset)
            for line in scenario_report(out, klines, source=source, seed=config.seed).lines():
                click.echo(line)


# --- evaluate ---------------------------------------------------------------------------------


@cli.group()
def evaluate() -> None:
    """Evaluate a synthetic dataset against real K-lines (protocol: docs/protocol.md).

    Each subcommand writes report.md, report.json and plots to --out and prints a short summary.

    \b
    Examples:
      kronos-synth evaluate all --real sp500-daily --synthetic synth/ --out report/
      kronos-synth evaluate discriminative --real BTCUSDT_15m.csv --synthetic synth-btc/ --n 3000
    """


_EVALUATE_HELP = {
    "all": "Every metric: discriminative, TSTR, diversity + memorization, validity + seam + drift, stylized, peers.",
    "discriminative": "Fidelity: real-vs-synthetic classifier score with calibration rows.",
    "tstr": "Usefulness: train on synthetic, test on real (IC / RankIC), with TRTR and calibration rows.",
    "diversity": "Joint t-SNE / PCA, return KDE, k-NN coverage and memorization.",
    "validity": "Bar validity, seam gap and trend-conditional drift.",
    "stylized": "Stylized facts of close log returns with a real-vs-real baseline.",
    "peers": "The metrics papers publish: Context-FID, correlational score, W1 of k-bar returns, ACF / leverage / "
             "gain-loss distances, signature MMD with a permutation test.",
}
# `evaluate calibration` (below) scores conditional paths of a model, not a synthetic dataset.


def _evaluate_command(name: str):
    @evaluate.command(name, help=f"""{_EVALUATE_HELP[name]}

    \b
    Example:
      kronos-synth evaluate {name} --real sp500-daily --synthetic synth/ --out report-{name}/
    """)
    @click.option("--real", "real", required=True, help="Real K-lines: file path or embedded dataset name.")
    @click.option("--synthetic", required=True, type=click.Path(exists=True),
                  help="Synthetic dataset folder (schema v1) or one Parquet part file.")
    @click.option("--freq", default=None, help="Frequency preset (default: the synthetic run's, else inferred).")
    @click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
                  help="Repeats (seeds) of the model-based metrics.")
    @click.option("--n", "n", type=click.IntRange(min=4), default=None,
                  help="Sequences drawn per set (real test windows and synthetic) [default: all synthetic].")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", default=f"evaluation-{name}", show_default=True, type=click.Path(file_okay=False),
                  help="Report folder.")
    @click.option("--protocol", type=click.Choice(["paper", "timegan"]), default="paper", show_default=True,
                  help="Discriminative protocol (timegan adds the predictive score).")
    @click.option("--epochs", type=click.IntRange(min=1), default=None,
                  help="Training epochs of the discriminator and forecaster [default: 20, the paper's].")
    @click.option("--iterations", type=click.IntRange(min=1), default=None,
                  help="TimeGAN protocol iterations [default: 2000 discriminator, 5000 predictor].")
    @click.option("--test-fraction", type=float, default=0.2, show_default=True,
                  help="Share of each symbol's history that is the test period.")
    @click.option("--period", type=click.Choice(["test", "validation"]), default="test", show_default=True,
                  help="Real windows to score against: the test period, or the validation period (the train "
                  "period's last --test-fraction; pair with `generate --split train-head` to compare models, e.g. "
                  "a fine-tune and its starting point, without reading the test period).")
    @click.option("--no-tsne", is_flag=True, help="Skip t-SNE (the slowest diversity step).")
    @click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
    def command(real: str, synthetic: str, freq: str | None, repeats: int, n: int | None, seed: int, out: str,
                protocol: str, epochs: int | None, iterations: int | None, test_fraction: float, period: str,
                no_tsne: bool, progress: bool | None) -> None:
        from kronos_synth.data.sources import load_klines
        from kronos_synth.data.synthetic import read_synthetic
        from kronos_synth.metrics.evaluate import METRICS, evaluate_all, summary_lines
        from kronos_synth.report import write_report

        result = evaluate_all(
            load_klines(real), read_synthetic(synthetic), freq=freq,
            metrics=METRICS if name == "all" else (name,), repeats=repeats, n=n, seed=seed, protocol=protocol,
            epochs=epochs, iterations=iterations, test_fraction=test_fraction, tsne=not no_tsne, period=period,
            progress=show_progress(progress), sources={"real": real, "synthetic": synthetic})
        files = write_report(result, out, real_source=real, synthetic_source=synthetic)
        for line in summary_lines(result):
            click.echo(line)
        click.echo(f"report: {files.markdown} (+ report.json, {len(files.plots)} plot(s))")

    return command


for _name in ("discriminative", "tstr", "diversity", "validity", "stylized", "peers", "all"):
    _evaluate_command(_name)


@evaluate.command("panel")
@click.option("--real", "real", required=True, help="Real K-lines with the panel's symbols: file path (a symbol "
              "column, or a folder / glob of one file per symbol).")
@click.option("--synthetic", required=True, type=click.Path(exists=True), help="Panel dataset (generate --panel).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Repeats (seeds) of the panel discriminative score.")
@click.option("--n", "n", type=click.IntRange(min=4), default=None, help="Panels per side of the classifier.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of the shared timeline that is the test period.")
@click.option("--period", type=click.Choice(["test", "validation"]), default="test", show_default=True,
              help="Real panels to score against: the test period, or the train period's last --test-fraction "
              "(pair with `generate --panel … --split train-head`).")
@click.option("--out", default="evaluation-panel", show_default=True, type=click.Path(file_okay=False))
def evaluate_panel_cmd(real: str, synthetic: str, repeats: int, n: int | None, epochs: int, seed: int,
                       test_fraction: float, period: str, out: str) -> None:
    """Panel metrics of a coupled multi-asset dataset: correlation-matrix error, eigenvalue spectrum,
    lower-tail dependence, volume co-movement and the cross-sectional discriminative score, with
    real-vs-real rows.

    \b
    Example:
      kronos-synth evaluate panel --real prices-15m.parquet --synthetic panels/ --out report-panel/
    """
    from kronos_synth.data.sources import load_klines
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.metrics.panel import evaluate_panels
    from kronos_synth.report.scenarios import write_panel_report

    res = evaluate_panels(load_klines(real), read_synthetic(synthetic), source=real, test_fraction=test_fraction,
                          repeats=repeats, epochs=epochs, n=n, seed=seed, period=period)
    files = write_panel_report(res, out, real_source=real, synthetic_source=synthetic)
    for line in res.lines():
        click.echo(line)
    click.echo(f"report: {files.markdown} (+ report.json)")


@evaluate.command("scenario")
@click.option("--real", "real", required=True, help="The real K-lines the run was generated from: file path or "
              "embedded dataset name.")
@click.option("--synthetic", required=True, type=click.Path(exists=True),
              help="Conditioned dataset (generate --condition or --scenario).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Repeats (seeds) of the discriminative score.")
@click.option("--n", "n", type=click.IntRange(min=4), default=None, help="Sequences per side of the classifier.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", default="evaluation-scenario", show_default=True, type=click.Path(file_okay=False))
def evaluate_scenario_cmd(real: str, synthetic: str, repeats: int, n: int | None, epochs: int, seed: int,
                          out: str) -> None:
    """A conditioned dataset against the real windows meeting its condition: hit rate, discriminative error,
    path quantiles, tails (and VaR / ES against history and GARCH for a stress pack).

    \b
    Example:
      kronos-synth evaluate scenario --real sp500-daily --synthetic stress/ --out report-stress/
    """
    from kronos_synth.data.sources import klines_for
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.metrics.scenario import scenario_report
    from kronos_synth.report.scenarios import write_scenario_report

    freq = read_synthetic(synthetic).metadata.get("freq")
    klines, source = klines_for(str(freq), real) if freq else (None, real)
    rep = scenario_report(synthetic, klines, source=source, repeats=repeats, n=n, epochs=epochs, seed=seed)
    files = write_scenario_report(rep, out, real_source=real, synthetic_source=synthetic)
    for line in rep.lines():
        click.echo(line)
    click.echo(f"report: {files.markdown} (+ report.json)")


@evaluate.command("roundtrip")
@click.option("--model", default=None, help="Predictor or tokenizer: folder or hub id [default: the embedded model].")
@click.option("--real", "real", required=True, multiple=True,
              help="Real K-lines: file path or embedded dataset name; repeat for several symbols.")
@click.option("--freq", default=None, help="Bar frequency [default: the model's, else inferred from --real]; "
              "finer data are resampled to it.")
@click.option("--lookback", type=click.IntRange(min=1), default=None,
              help="Context bars [default: the model's, else the frequency preset].")
@click.option("--horizon", type=click.IntRange(min=2), default=None,
              help="Scored bars [default: the model's, else the frequency preset].")
@click.option("--n", "n", type=click.IntRange(min=4), default=500, show_default=True,
              help="Test windows round-tripped (and as many other test windows as the real reference).")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Repeats (seeds) of the discriminative score.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Discriminator training epochs [default: 20, the paper's].")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of each symbol's history that is the test period.")
@click.option("--no-calibration", is_flag=True, help="Skip the calibration rows (real train period, disjoint "
              "halves, shuffled bars).")
@click.option("--out", default="evaluation-roundtrip", show_default=True, type=click.Path(file_okay=False),
              help="Report folder.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def evaluate_roundtrip_cmd(model: str | None, real: tuple[str, ...], freq: str | None, lookback: int | None,
                           horizon: int | None, n: int, repeats: int, seed: int, epochs: int | None,
                           test_fraction: float, no_calibration: bool, out: str, progress: bool | None) -> None:
    """Tokenizer round trip: encode → decode real TEST windows, score them like synthetic data.

    What the generator would output if the predictor emitted the true tokens — the fidelity ceiling
    of a tokenizer and its representation. Scores the decoded horizons against other real test
    windows (discriminative, paper protocol), raw validity, stylized facts, codebook usage.

    \b
    Examples:
      kronos-synth evaluate roundtrip --real sp500-daily --out report-roundtrip/
      kronos-synth evaluate roundtrip --model runs/tok --real BTCUSDT_15m.csv --freq 15min --n 500
    """
    import pandas as pd

    from kronos_synth.data.frequency import get_preset, infer_frequency
    from kronos_synth.data.sources import klines_for, load_klines
    from kronos_synth.metrics.roundtrip import evaluate_roundtrip, summary_lines
    from kronos_synth.model.pretrained import load_tokenizer
    from kronos_synth.report import write_report

    if not 0 < test_fraction < 1:
        raise click.BadParameter(f"must be between 0 and 1, got {test_fraction}", param_hint="--test-fraction")
    bundle = load_tokenizer(model)
    freq = freq or bundle.freq or infer_frequency(load_klines(real[0])).name
    preset = get_preset(freq)
    frames, labels = zip(*(klines_for(preset.name, r) for r in real), strict=True)
    res = evaluate_roundtrip(
        bundle.tokenizer, bundle.representation, pd.concat(frames, ignore_index=True),
        lookback=lookback or bundle.lookback or preset.lookback, horizon=horizon or bundle.horizon or preset.horizon,
        freq=preset.name, n=n, repeats=repeats, seed=seed, test_fraction=test_fraction, epochs=epochs,
        calibration=not no_calibration, progress=show_progress(progress),
        sources={"real": list(labels), "model": model or "embedded default", "tokenizer": bundle.tokenizer_id})
    files = write_report(res.evaluation, out, real_source=real[0] if len(real) == 1 else ", ".join(real))
    for line in summary_lines(res):
        click.echo(line)
    click.echo(f"report: {files.markdown} (+ report.json, {len(files.plots)} plot(s))")


@evaluate.command("calibration")
@click.option("--real", "real", required=True, help="Real K-lines: file path or embedded dataset name.")
@click.option("--freq", required=True, help="Bar frequency preset (finer data are resampled to it).")
@click.option("--model", default=None, help="Predictor: hub id or folder [default: the embedded model].")
@click.option("--tokenizer", default=None, help="Tokenizer: hub id or folder (default: the model's own).")
@click.option("--lookback", type=click.IntRange(min=2), default=None, help="Context bars [default: the preset's].")
@click.option("--horizon", type=click.IntRange(min=1), default=None, help="Forecast bars [default: the preset's].")
@click.option("--horizons", default=None, help="Comma-separated horizons h scored [default: 1, 5 and the horizon].")
@click.option("--contexts", type=click.IntRange(min=2), default=200, show_default=True,
              help="Real test-period contexts, evenly spaced.")
@click.option("--samples", type=click.IntRange(min=2), default=50, show_default=True,
              help="Sampled continuations per context (50 or more for a usable PIT).")
@click.option("--generators", default="kronos,garch,bootstrap", show_default=True,
              help="Forecasters: kronos (the model), garch and bootstrap (references).")
@click.option("--temperature", type=float, default=_gen_default("temperature"), show_default=True)
@click.option("--top-p", type=float, default=_gen_default("top_p"), show_default=True)
@click.option("--top-k", type=int, default=_gen_default("top_k"), show_default=True, help="0 = off.")
@click.option("--temperature-spread", type=float, default=_gen_default("temperature_spread"), show_default=True,
              help="σ of each path's log-temperature (docs/models.md, \"Path-to-path volatility\").")
@click.option("--volatility-spread", type=float, default=_gen_default("volatility_spread"), show_default=True,
              help="σ of each path's log volatility scale (geometry models; same section).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of each symbol's history that is the test period.")
@click.option("--batch-size", type=int, default=_gen_default("batch_size"), show_default=True)
@click.option("--device", default=_gen_default("device"), show_default=True, help="auto, cpu, cuda, cuda:N, mps.")
@click.option("--dtype", default=_gen_default("dtype"), show_default=True, help="auto (bf16 where fast), fp32, bf16.")
@click.option("--out", default="evaluation-calibration", show_default=True, type=click.Path(file_okay=False),
              help="Report folder.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def evaluate_calibration_cmd(real: str, freq: str, model: str | None, tokenizer: str | None, lookback: int | None,
                             horizon: int | None, horizons: str | None, contexts: int, samples: int, generators: str,
                             temperature: float, top_p: float, top_k: int, temperature_spread: float,
                             volatility_spread: float, seed: int, test_fraction: float, batch_size: int, device: str, dtype: str, out: str, progress: bool | None) -> None:
    """Calibration of conditional paths: CRPS, PIT and interval coverage of sampled continuations.

    Takes real test-period contexts, draws --samples continuations of each from Kronos and from two
    reference forecasters (GARCH(1,1)-t, block bootstrap of the context), and scores the h-bar return
    and realised volatility against what happened (docs/protocol.md, "Calibration of conditional paths").

    \b
    Examples:
      kronos-synth evaluate calibration --real sp500-daily --freq daily --horizon 35 --out calib/
      kronos-synth evaluate calibration --real BTCUSDT_15m.csv --freq 15min --model runs/btc --samples 100
    """
    from kronos_synth.data.sources import klines_for
    from kronos_synth.metrics.forecast_calibration import evaluate_calibration, summary_lines
    from kronos_synth.report.calibration import write_calibration_report

    names = [g.strip() for g in generators.split(",") if g.strip()]
    unknown = sorted(set(names) - {"kronos", "garch", "bootstrap"})
    if unknown or not names:
        raise click.BadParameter(f"unknown forecaster(s) {unknown} — choose from kronos, garch, bootstrap",
                                 param_hint="--generators")
    try:
        hs = [int(h) for h in horizons.split(",")] if horizons else None
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers, got {horizons!r}",
                                 param_hint="--horizons") from None
    if not 0 < test_fraction < 1:
        raise click.BadParameter(f"must be between 0 and 1, got {test_fraction}", param_hint="--test-fraction")
    frame, label = klines_for(freq, real)
    forecasters = {}
    if "kronos" in names:
        from kronos_synth.generate.conditional import KronosForecaster
        from kronos_synth.model.pretrained import load_model_pair

        forecasters["kronos"] = KronosForecaster(
            load_model_pair(model, tokenizer), freq=freq, temperature=temperature, top_p=top_p, top_k=top_k,
            temperature_spread=temperature_spread, volatility_spread=volatility_spread, batch_size=batch_size, device=device, dtype=dtype, progress=progress)
    result = evaluate_calibration(frame, forecasters, freq=freq, lookback=lookback, horizon=horizon,
                                  n_contexts=contexts, samples=samples, horizons=hs, seed=seed,
                                  test_fraction=test_fraction, references=[g for g in names if g != "kronos"],
                                  log=lambda line: click.echo(line, err=True) if show_progress(progress) else None)
    files = write_calibration_report(result, out, source=label)
    for line in summary_lines(result):
        click.echo(line)
    click.echo(f"report: {files.markdown} (+ report.json, calibration.png)")


# --- baseline ---------------------------------------------------------------------------------


def _parse_options(pairs: tuple[str, ...]) -> dict:
    """`key=value` pairs; values are JSON when they parse (numbers, lists, null), else strings."""
    import json

    opts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got '{pair}'", param_hint="--option")
        try:
            opts[key.strip().replace("-", "_")] = json.loads(value)
        except ValueError:
            opts[key.strip().replace("-", "_")] = value
    return opts


@cli.group()
def baseline() -> None:
    """Baseline generators (TimeGAN, TimeVAE, Diffusion-TS, GARCH, block bootstrap): fit, then sample.

    \b
    Example:
      kronos-synth baseline fit garch --data sp500-daily --freq daily --out runs/garch
      kronos-synth baseline sample runs/garch --n 6000 --out synth-garch/
    """


@baseline.command("fit")
@click.argument("name", type=click.Choice(BASELINE_NAMES, case_sensitive=False))
@click.option("--data", default=None, help="K-line file (CSV/Parquet) or embedded dataset name "
              "(default: the embedded dataset of --freq).")
@click.option("--freq", required=True, help="Bar frequency preset: 1min 5min 15min 30min 1h 4h daily weekly.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=None, help="Training budget: TimeGAN iterations per phase, "
              "TimeVAE max epochs, Diffusion-TS training steps (default: CPU-sized, see docs/baselines.md).")
@click.option("--window", type=int, default=None, help="Bars per window (default: the preset horizon, "
              "daily 35, 15min 96).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Model option, e.g. -o layers=3 -o d_model=64 (the fields of the baseline's Options dataclass; "
              "full-size settings: docs/baselines.md).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def baseline_fit(name: str, data: str | None, freq: str, out: str, seed: int, steps: int | None,
                 window: int | None, options: tuple[str, ...], progress: bool | None) -> None:
    """Fit a baseline on the train-period windows of --data and save it to --out.

    \b
    Examples:
      kronos-synth baseline fit garch --data sp500-daily --freq daily --out runs/garch
      kronos-synth baseline fit diffusion-ts --data BTCUSDT_15m.csv --freq 15min --out runs/dts --steps 500
    """
    from kronos_synth.baselines import BaselineError, baseline_class
    from kronos_synth.baselines.fitting import fit_baseline

    opts = _parse_options(options)
    try:  # keys and values against the baseline's Options dataclass, before any data is read
        baseline_class(name).Options.parse(opts, baseline=name)
    except BaselineError as e:
        raise click.BadParameter(str(e), param_hint="'-o' / '--option'") from None
    res = fit_baseline(name, data, freq, out, seed=seed, steps=steps, window=window, options=opts,
                       progress=show_progress(progress))
    r = res.report
    losses = ", ".join(f"{k} {v:.4g}" for k, v in r.final_losses.items()) or "-"
    ratios = " ".join(f"{k} {v:.2f}" for k, v in (r.collapse.ratios.items() if r.collapse else []))
    click.echo(f"{r.name}: fit on {r.n_windows} train windows of {r.window} bars from {res.source} "
               f"in {r.wall_time_s:.1f}s, {r.n_parameters} parameters; final losses: {losses}; "
               f"spread vs real: {ratios}{'' if r.collapse is None or r.collapse.ok else ' (COLLAPSED)'} "
               f"→ {res.path}")


@baseline.command("sample")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--n", "n", type=int, required=True, help="Number of synthetic sequences.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dataset folder.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--part-size", type=int, default=1000, show_default=True, help="Sequences per Parquet part.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def baseline_sample(model_dir: str, n: int, out: str, seed: int, part_size: int, progress: bool | None) -> None:
    """Sample a fitted baseline into a schema-v1 Parquet dataset (rerun to resume).

    \b
    Example:
      kronos-synth baseline sample runs/garch --n 6000 --out synth-garch/
    """
    from kronos_synth.baselines.sampling import sample_to_dataset

    if part_size <= 0:
        raise click.BadParameter(f"must be positive, got {part_size}", param_hint="--part-size")
    res = sample_to_dataset(model_dir, n, out, seed=seed, sequences_per_part=part_size,
                            progress=show_progress(progress))
    click.echo(f"wrote {res.parts_written} of {res.parts_total} parts ({res.n} sequences) in "
               f"{res.wall_time_s:.1f}s → {res.path}")


# --- augment ----------------------------------------------------------------------------------


@cli.command()
@click.option("--real", required=True, help="Real K-lines: file (CSV/Parquet), glob or embedded dataset name.")
@click.option("--synthetic", required=True, type=click.Path(), help="Synthetic dataset folder (schema v1).")
@click.option("--ratio", type=float, required=True, help="Synthetic sequences per real window (0.5, 1, 2 …).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file (.parquet or .csv).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default=None,
              help="Output format [default: from the --out extension, else parquet].")
@click.option("--window", type=int, default=None, help="Bars per example [default: the synthetic sequences' "
              "length].")
@click.option("--freq", default=None, help="Bar frequency [default: the synthetic dataset's].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the synthetic draw and the shuffle.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Last share of each symbol held out as the test period (never used here).")
@click.option("--stride", type=int, default=1, show_default=True, help="Bars between real window starts.")
@click.option("--max-real", type=int, default=None, help="Keep a seeded sample of this many real windows "
              "[default: all].")
def augment(real: str, synthetic: str, ratio: float, out: str, fmt: str | None, window: int | None,
            freq: str | None, seed: int, test_fraction: float, stride: int, max_real: int | None) -> None:
    """Mix real train-period windows with synthetic sequences into one shuffled training set.

    Every row is one bar, tagged origin=real|synthetic with its provenance (source, window_start or
    sequence_id, generator). The real test period (last --test-fraction per symbol, plus a gap of one
    window) is never used, so a model trained on the output can be tested on it.

    \b
    Examples:
      kronos-synth augment --real sp500-daily --synthetic synth/ --ratio 1 --out train.parquet
      kronos-synth augment --real BTCUSDT_15m.csv --synthetic synth-btc/ --ratio 0.5 \\
          --window 96 --format csv --out train.csv
    """
    from kronos_synth.data.augment import augment as augment_set

    aug = augment_set(real, synthetic, ratio=ratio, out=out, format=fmt, window=window, freq=freq, seed=seed,
                      test_fraction=test_fraction, stride=stride, max_real=max_real)
    click.echo(f"wrote {len(aug.frame)} rows to {out}: {aug.summary()}")


# --- corpus -----------------------------------------------------------------------------------


@cli.group()
def corpus() -> None:
    """Pretraining corpora: many instruments and bar sizes, cleaned, split and windowed.

    \b
    Example:
      kronos-synth corpus build crypto=binance/ markets/ --out corpus/
    """


@corpus.command("build")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output corpus folder.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Last share of each instrument's bars kept for validation (held-out periods).")
@click.option("--holdout-fraction", type=float, default=0.1, show_default=True,
              help="Share of instruments held out whole (seeded hash of the name) for zero-shot validation.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the instrument hold-out hash.")
@click.option("--freqs", default="5min,15min,30min,1h,4h,daily", show_default=True,
              help="Bar sizes to keep (comma-separated presets); files at other sizes are skipped and listed.")
@click.option("--embargo", multiple=True, metavar="PATTERN@START..END",
              help="Drop the bars of instruments matching PATTERN in a period (e.g. benchmark test periods); "
              "repeatable.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def corpus_build(sources: tuple[str, ...], out: str, val_fraction: float, holdout_fraction: float, seed: int,
                 freqs: str, embargo: tuple[str, ...], progress: bool | None) -> None:
    """Build a pretraining corpus from folders of K-line files (CSV, TSV, Parquet, Feather).

    SOURCES are folders (searched recursively) or files, optionally as GROUP=PATH to name the asset
    class used to balance training (default: the first sub-folder under the source, else its name).
    OUT gets manifest.json (sources, sha256, bar counts, cleaning, split per file) and memory-mappable
    window arrays that `train tokenizer/model --corpus` stream.

    \b
    Example:
      kronos-synth corpus build crypto=binance/ markets/ --out corpus/ --embargo 'EURUSD@2018-01-01..2018-12-31'
    """
    from kronos_synth.data.corpus import CorpusConfig, Embargo, build_corpus

    config = CorpusConfig(val_fraction=val_fraction, holdout_fraction=holdout_fraction, seed=seed,
                          freqs=tuple(f.strip() for f in freqs.split(",") if f.strip()),
                          embargo=tuple(Embargo.parse(e) for e in embargo))
    manifest = build_corpus(list(sources), out, config, progress=show_progress(progress))
    totals = {s: (sum(v["rows"] for v in a.values()), sum(v["windows"] for v in a.values()))
              for s, a in manifest["arrays"].items()}
    n_hold = sum(1 for v in manifest["instruments"].values() if v["split"] == "holdout")
    click.echo(f"{out}: {len(manifest['files'])} files, {len(manifest['instruments'])} instruments "
               f"({n_hold} held out), {len(manifest['skipped'])} files skipped (listed in manifest.json)")
    for split, (rows, windows) in totals.items():
        click.echo(f"  {split}: {rows} bars, {windows} windows")


# --- train ------------------------------------------------------------------------------------


def _train_config(command: str):
    """The settings class of `train tokenizer` / `train model`: its fields give the options' defaults."""
    from kronos_synth.train.config import PredictorTrainingConfig, TokenizerTrainingConfig

    return {"tokenizer": TokenizerTrainingConfig, "model": PredictorTrainingConfig}[command]


def _sci(x: float) -> str:
    """5e-4, not 0.0005 (help texts)."""
    import numpy as np

    return np.format_float_scientific(x, trim="-", exp_digits=1)


def _tok_default(name: str):
    """A `train tokenizer` option's default: the library's (TokenizerTrainingConfig), written once."""
    return _train_config("tokenizer").default(name)


def _model_default(name: str):
    """A `train model` option's default: the library's (PredictorTrainingConfig), written once."""
    return _train_config("model").default(name)


def _train_options(command: str):
    """Options shared by `train tokenizer` and `train model` (applied bottom-up), with the defaults of the
    command's settings class, written once there."""
    cls = _train_config(command)
    d = cls.default
    opts = [
        click.option("--data", "data", multiple=True, required=True,
                     help="K-line file/glob or embedded dataset name; repeat for several sources."),
        click.option("--out", required=True, type=click.Path(file_okay=False),
                     help="Output folder (reference format + training.json; rerun to resume)."),
        click.option("--init", default=d("init"), help="Fine-tune this checkpoint (hub id or folder) instead of "
                     "training from scratch."),
        click.option("--steps", type=int, default=d("steps"),
                     help=f"Optimizer steps (default {cls.default_steps} unless --epochs)."),
        click.option("--epochs", type=float, default=d("epochs"), help="Passes over the train windows."),
        click.option("--freq", default=d("freq"), show_default=True,
                     help="Bar frequency; finer sources are resampled to it."),
        click.option("--phase-offsets", is_flag=True, default=d("phase_offsets"),
                     help="Resample sources finer than an intraday --freq at "
                     "every bin offset (5m → 15m bars starting at :00, :05, :10): more train windows from the "
                     "same market and period; validation stays on offset 0."),
        click.option("--validation", type=click.Choice(["held-out", "train-tail"]), default=d("validation"),
                     show_default=True, help="Validation windows: held-out = each symbol's test period (last "
                     "20 %); train-tail = the tail of the train period, so the test period that `evaluate` "
                     "scores stays unseen (checkpoints are chosen on validation)."),
        click.option("--lookback", type=int, default=d("lookback"),
                     help="Context bars (default: frequency preset)."),
        click.option("--horizon", type=int, default=d("horizon"), help="Predicted bars (default: frequency preset)."),
        click.option("--seed", type=int, default=d("seed"), show_default=True),
        click.option("--batch-size", type=int, default=d("batch_size"), show_default=True),
        click.option("--lr", type=float, default=d("lr"), help=f"Peak learning rate (default: {_sci(cls.finetune_lr)} "
                     f"with --init, else {_sci(cls.scratch_lr)})."),
        click.option("--config", "config", default=d("config"), help="Size: preset (tiny, small), released name "
                     "(Kronos-small), JSON object or .json file. Default: small."),
        click.option("--eval-every", type=int, default=d("eval_every"), show_default=True,
                     help="Validate every N steps."),
        click.option("--patience", type=int, default=d("patience"), show_default=True,
                     help="Stop after N validations without improvement (0 = never)."),
        click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only)."),
    ]

    def decorate(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def _train_summary(res, out: str) -> str:
    r = res.result
    state = ("finished" + (" (early stop)" if r.stopped_early else "")) if r.finished else "paused"
    line = (f"{out}: {state} at step {r.steps_done}/{r.total_steps}; best val loss {r.best_val_loss:.5f} "
            f"at step {r.best_step}; {r.wall_time_s:.0f} s")
    usage = res.extra.get("codebook_usage", {}).get("val")
    if usage:
        line += f"; codebook usage s1 {100 * usage['s1_usage']:.1f} %, s2 {100 * usage['s2_usage']:.1f} %"
    return line


@cli.group()
def train() -> None:
    """Train or fine-tune a Kronos tokenizer, then a predictor on it (reference-format checkpoints).

    \b
    Example:
      kronos-synth train tokenizer --data sp500-daily --data goog-daily --out runs/tok
      kronos-synth train model --tokenizer runs/tok --data sp500-daily --out runs/model
      kronos-synth generate --n 100 --freq daily --model runs/model --out synth/
    """


@train.command("tokenizer")
@_train_options("tokenizer")
@click.option("--d-model", type=int, default=None)
@click.option("--n-heads", type=int, default=None)
@click.option("--ff-dim", type=int, default=None)
@click.option("--enc-layers", "n_enc_layers", type=int, default=None, help="n_enc_layers (embed counts as one).")
@click.option("--dec-layers", "n_dec_layers", type=int, default=None,
              help="n_dec_layers (projection counts as one).")
@click.option("--s1-bits", type=int, default=None)
@click.option("--s2-bits", type=int, default=None)
@click.option("--representation", type=click.Choice(["levels", "geometry"]), default=_tok_default("representation"),
              help="Input space: levels (the reference; released checkpoints) or geometry (returns, wicks, "
              "log volume, VWAP position; valid bars by construction) [default: the --init checkpoint's, "
              "else levels].")
@click.option("--tail-weight", type=float, default=_tok_default("tail_weight"), show_default=True,
              help="Weigh each reconstruction error by 1 + w·x² (x: the normalised input) so rare large bars "
              "keep their size through the tokenizer; 0 is the reference loss (docs/models.md, Tails).")
@click.option("--center-returns/--no-center-returns", default=_tok_default("center_returns"),
              help="geometry: scale gap/body around 0, not around the context's mean return, so generated "
              "sequences do not carry the context's trend on [default: the --init checkpoint's, else no].")
def train_tokenizer_cmd(data, out, progress, d_model, n_heads, ff_dim, n_enc_layers, n_dec_layers, s1_bits,
                        s2_bits, **settings) -> None:
    """Train a BSQ tokenizer (coarse + fine reconstruction + BSQ loss) on the train periods of --data.

    Validation uses each symbol's test period (last 20 %), or with --validation train-tail the train
    period's own tail. Rerunning the same command continues from OUT/checkpoint-last.

    \b
    Examples:
      kronos-synth train tokenizer --data sp500-daily --data nasdaq-daily --steps 600 --out runs/tok
      kronos-synth train tokenizer --representation geometry --data BTC_15m.csv --freq 15min \\
          --steps 600 --out runs/btc-geo-tok
      kronos-synth train tokenizer --init NeoQuasar/Kronos-Tokenizer-base --data BTC_15m.csv \\
          --freq 15min --steps 500 --out runs/btc-tok
    """
    import sys

    from kronos_synth.train import TokenizerTrainingConfig, train_tokenizer

    # the option names are the config keys, so the library's messages about them map to these flags
    overrides = dict(d_model=d_model, n_heads=n_heads, ff_dim=ff_dim, n_enc_layers=n_enc_layers,
                     n_dec_layers=n_dec_layers, s1_bits=s1_bits, s2_bits=s2_bits)
    config = TokenizerTrainingConfig(overrides=overrides, **settings)
    res = train_tokenizer(list(data), out, config, progress=show_progress(progress),
                          log=lambda line: click.echo(line, err=True), command=sys.argv)
    click.echo(_train_summary(res, out))


@train.command("model")
@click.option("--tokenizer", required=True, help="The (frozen) tokenizer: folder or hub id.")
@_train_options("model")
@click.option("--d-model", type=int, default=None)
@click.option("--n-heads", type=int, default=None)
@click.option("--ff-dim", type=int, default=None)
@click.option("--layers", "n_layers", type=int, default=None, help="n_layers of the main stack.")
@click.option("--dropout", type=float, default=None, help="ffn and residual dropout.")
@click.option("--teacher-forcing/--sampled-s1", default=_model_default("teacher_forcing"), show_default=True,
              help="Condition the s2 head on the true s1, or on an s1 sampled from the model as the reference "
              "does (its s2 head then ignores s1 and sampled bars come out ~30 % too small).")
@click.option("--s2-lr-scale", type=float, default=_model_default("s2_lr_scale"), show_default=True,
              help="Learning-rate multiplier for the s2 head (its dependency layer and projection); with "
              "--teacher-forcing, e.g. 10 when fine-tuning a model whose s2 head ignores s1.")
@click.option("--regime-buckets", type=int, default=None,
              help="From scratch: give the model the volatility-regime input (the context's volatility against the "
              "8 lookbacks before it, in this many buckets; 15 as the embedded default). See docs/models.md.")
@click.option("--regime-lr-scale", type=float, default=_model_default("regime_lr_scale"), show_default=True,
              help="Learning-rate multiplier for the volatility-regime table (a table new to a trained model starts "
              "at zero).")
def train_model_cmd(tokenizer, data, out, progress, d_model, n_heads, ff_dim, n_layers, dropout, regime_buckets,
                    **settings) -> None:
    """Train a Kronos predictor on a frozen tokenizer; loss (CE_s1 + CE_s2) / 2 over all positions.

    OUT/kronos_synth.json records the tokenizer (relative path) and max_context, so
    `kronos-synth generate --model OUT` finds both.

    \b
    Examples:
      kronos-synth train model --tokenizer runs/tok --data sp500-daily --steps 700 --out runs/model
      kronos-synth train model --init NeoQuasar/Kronos-small --tokenizer NeoQuasar/Kronos-Tokenizer-base \\
          --data BTC_15m.csv --freq 15min --lr 1e-5 --steps 500 --out runs/btc-model
    """
    import sys

    from kronos_synth.train import PredictorTrainingConfig, train_predictor

    overrides = dict(d_model=d_model, n_heads=n_heads, ff_dim=ff_dim, n_layers=n_layers, ffn_dropout_p=dropout,
                     resid_dropout_p=dropout, regime_buckets=regime_buckets)
    config = PredictorTrainingConfig(overrides=overrides, **settings)
    res = train_predictor(list(data), out, config, tokenizer=tokenizer, progress=show_progress(progress),
                          log=lambda line: click.echo(line, err=True), command=sys.argv)
    click.echo(_train_summary(res, out))


if __name__ == "__main__":
    main()
