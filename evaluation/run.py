"""Run a benchmark protocol end to end, stage by stage, resumably.

    python -m evaluation.run sp500-daily [--quick] [--out DIR] [--jobs 2] [--threads 2]
    python -m evaluation.run crypto-15m [--data-dir DIR]   # DIR: the Binance *_15m.csv files (not shipped)

Per protocol (evaluation/protocols/NAME.toml): split the data; fine-tune (or train) a Kronos tokenizer
and predictor on the train period; generate its set; fit and sample every baseline; evaluate every
generator (plus the tokenizer round trip) and the calibration rows once; the optional sampling sweep;
then write report.json, report.md and plots to evaluation/results/NAME/ (quick runs:
evaluation/results/quick/NAME/). `stages.json` there records every finished stage with the hash of
the settings it depends on: a rerun skips finished stages, and a changed setting reruns exactly the
stages whose settings (or whose inputs' settings) changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

from evaluation import stages as st
from evaluation.protocol import (
    BASELINES,
    CRYPTO_DATA_DIR,
    KRONOS,
    RESULTS_DIR,
    ROUNDTRIP,
    TIMEGAN_STOCKS_DIR,
    embedded_sha256,
    load_protocol,
    resolve_data,
    resolve_train_data,
    settings_key,
    sha256_file,
)
from kronos_synth.baselines.base import TRANSFORM as BASELINE_TRANSFORM
from kronos_synth.data.errors import InputError
from kronos_synth.metrics.discriminative import SPLIT as DISCRIMINATIVE_SPLIT
from kronos_synth.metrics.forecast_calibration import SPREAD_GRID

SPREADS = ("temperature_spread", "volatility_spread")  # per-path sampling factors (docs/models.md)

STAGES_FILE = "stages.json"
#: `--zero-shot`: the embedded default with no training stage, beside the bootstrap fitted to the train period
ZERO_SHOT = {"kronos": {"init": "zero-shot"}, "generators": [KRONOS, "bootstrap"], "sweep": {"enabled": False}}
DEFAULT_DATA_DIR = CRYPTO_DATA_DIR  # --data-dir when that folder exists


@dataclass
class Stage:
    name: str
    fn: Callable[..., dict]
    settings: dict  # what the output depends on besides the dependencies' outputs
    deps: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    outputs: tuple[str, ...] = ()  # paths under out/, wiped when the stage's key changes
    serial: bool = False  # runs in the main process with --threads torch threads (training, generation)
    key: str = ""
    #: the stage runs without its dependencies' outputs (it names what is missing): a finished dependency whose
    #: outputs are gone is not redone for it
    tolerates_missing: bool = False


def spread_setting(kronos: dict) -> dict:
    """The per-path spreads, in a stage's settings only when set (keys of runs without them stay); "auto" is
    the spread stage's choice, which its key carries."""
    return {k: v if v == "auto" else float(v) for k in SPREADS if (v := kronos.get(k))}


def plan(proto: dict, files_sha256: dict[str, str] | None = None,
         train_files_sha256: dict[str, str] | None = None) -> list[Stage]:
    """The protocol's stages in dependency order, each with its settings key (changed input files → new keys).

    `train_files_sha256`: the files of `kronos.train_data`, when set."""
    base = {k: proto[k] for k in ("name", "data", "freq", "window", "test_fraction", "seed")}
    base["files_sha256"] = files_sha256 or {}
    k, ev, sw = proto["kronos"], proto["evaluation"], proto["sweep"]
    gens = list(proto["generators"])
    kronos_train = {x: k[x] for x in ("representation", "init", "eval_every", "patience", "val_windows")}
    if k["init"] in ("embedded", "zero-shot"):  # a retrained embedded model invalidates what was made from it
        kronos_train["init_sha256"] = embedded_sha256()
    zero_shot = k["init"] == "zero-shot"  # the embedded default as it is: no training stages
    if not zero_shot:  # checkpoints chosen on the train period's tail (before: on the test period)
        kronos_train["validation"] = st.VALIDATION
    # only when set, so the keys of protocols without them (and their finished stages) stay as they were
    if k.get("train_data"):
        kronos_train.update(train_data=k["train_data"], train_files_sha256=train_files_sha256 or {})
    if k.get("phase_offsets"):
        kronos_train["phase_offsets"] = True
    if k.get("center_returns"):
        kronos_train["center_returns"] = True
    out: list[Stage] = [Stage("data", st.data_stage, {"base": base}, outputs=("work/real.pkl",))]
    wants_model = KRONOS in gens or ROUNDTRIP in gens or sw.get("enabled")
    if wants_model and not zero_shot:
        out.append(Stage("tokenizer", st.tokenizer_stage,
                         {"kronos": kronos_train, **{x: k[x] for x in k if x.startswith("tokenizer_")}},
                         ("data",), outputs=("work/tokenizer",), serial=True))
    if (KRONOS in gens or sw.get("enabled")) and not zero_shot:
        out.append(Stage("predictor", st.predictor_stage, {x: k[x] for x in k if x.startswith("predictor_")},
                         ("tokenizer",), outputs=("work/predictor",), serial=True))
    model_dep = ("data",) if zero_shot else ("predictor",)
    if (KRONOS in gens or sw.get("enabled")) and st.selects(proto):
        settings = {"selection": proto["selection"], **{x: k[x] for x in ("temperature", "top_p", "batch_size")},
                    "spreads": {x: 0.0 if k[x] == "auto" else k[x] for x in SPREADS}}
        settings.update(gaps_setting(k))
        out.append(Stage("select", st.select_stage, settings, ("predictor",), outputs=("work/select",
                                                                                         "work/selected.json"),
                         serial=True))
        model_dep = ("select",)
    auto_spread = KRONOS in gens and any(k.get(x) == "auto" for x in SPREADS)
    if auto_spread:
        settings = {x: k[x] for x in ("temperature", "top_p", "batch_size")}
        if k.get("volatility_spread"):  # (only when set: the keys of temperature-only runs stay as they were)
            settings["volatility_spread"] = spread_setting(k)["volatility_spread"]
        settings["grid"] = list(k.get("spread_grid", SPREAD_GRID))
        settings["validation"] = {x: proto["forecast_calibration"][x] for x in ("val_contexts", "samples")}
        if zero_shot:
            settings["zero_shot"] = kronos_train
        out.append(Stage("spread", st.spread_stage, settings, model_dep, outputs=("work/spread.json",), serial=True))
    sampled_by = ("spread",) if auto_spread else model_dep
    if KRONOS in gens:
        settings = {x: k[x] for x in ("n", "temperature", "top_p", "batch_size")}
        settings.update(spread_setting(k))
        settings.update(gaps_setting(k))
        if zero_shot:
            settings["zero_shot"] = kronos_train
        out.append(Stage("generate", st.generate_stage, settings, sampled_by, outputs=("work/kronos",), serial=True))
    fc = proto["forecast_calibration"]
    if KRONOS in gens and fc.get("enabled"):
        settings = {"forecast_calibration": fc, **{x: k[x] for x in ("temperature", "top_p", "batch_size")},
                    **spread_setting(k)}
        if zero_shot:
            settings["zero_shot"] = kronos_train
        out.append(Stage("forecast-calibration", st.forecast_calibration_stage, settings, sampled_by,
                         outputs=("forecast-calibration",), serial=True))
    if ROUNDTRIP in gens:
        out.append(Stage("roundtrip", st.roundtrip_stage, {"n": ev["n"], "times": True},
                         ("data",) if zero_shot else ("tokenizer",),
                         outputs=("work/roundtrip",)))
    for b in BASELINES:
        if b in gens:
            out.append(Stage(f"baseline:{b}", st.baseline_stage, {"options": proto["baselines"].get(b, {}),
                                                                  "n": proto["baselines"]["n"],
                                                                  "transform": BASELINE_TRANSFORM},
                             ("data",), {"name": b}, (f"work/baselines/{b}",)))
    ev = {**ev, "discriminative_split": DISCRIMINATIVE_SPLIT}  # a changed split reruns every evaluation
    out.append(Stage("calibration", st.calibration_stage, {"evaluation": ev}, ("data",), outputs=("calibration.json",)))
    source_of = {KRONOS: "generate", ROUNDTRIP: "roundtrip", **{b: f"baseline:{b}" for b in BASELINES}}
    out.append(Stage("peers", st.peers_stage, {"evaluation": ev, "generators": gens},
                     tuple(source_of[g] for g in gens), outputs=("peers.json",), tolerates_missing=True))
    for g in gens:
        out.append(Stage(f"evaluate:{g}", st.evaluate_stage, {"evaluation": ev}, (source_of[g],),
                         {"generator": g}, (f"generators/{g}",)))
    if sw.get("enabled") and not zero_shot:
        for t in sw["temperatures"]:
            for p in sw["top_ps"]:
                label = f"t{t:g}-p{p:g}"
                out.append(Stage(f"sweep:{label}", st.sweep_stage,
                                 {"sweep": {x: sw[x] for x in ("n", "repeats", "epochs")}, "evaluation": ev,
                                  "batch_size": k["batch_size"]},
                                 model_dep, {"temperature": float(t), "top_p": float(p)},
                                 (f"work/sweep/{label}",)))
    return assign_keys(out, base)


def gaps_setting(k: dict) -> dict:
    """The generation gap convention, in a stage's settings only when it is not "model" (the runs made before
    the setting existed keep their keys)."""
    return {} if k.get("gaps", "model") == "model" else {"gaps": k["gaps"]}


def assign_keys(stages: list[Stage], base: dict) -> list[Stage]:
    """Give each stage (in dependency order) the key of its settings, parameters and its dependencies' keys."""
    keys: dict[str, str] = {}
    for s in stages:
        s.key = settings_key({"base": base, "stage": s.name, "settings": s.settings, "params": s.params,
                              "deps": {d: keys[d] for d in s.deps}})
        keys[s.name] = s.key
    return stages


def _exit_with_parent(parent: int, every_s: float = 2.0) -> None:
    """Stop this worker when the runner dies: a killed runner (SIGTERM, SIGKILL) leaves its pool workers
    alive, and they would go on writing the stage they were running into the results folder."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _worker_init() -> None:
    import threading

    import torch

    torch.set_num_threads(1)  # metric nets and baselines: one thread each, two processes on two cores
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _call(fn: Callable[..., dict], ctx: st.StageContext, params: dict) -> tuple[dict, float]:
    t0 = time.perf_counter()
    result = fn(ctx, **params)
    return result, round(time.perf_counter() - t0, 3)


class StageLog:
    """stages.json: per stage its key, status, wall time and summary; one entry per invocation."""

    def __init__(self, out: Path, proto: dict):
        self.path = out / STAGES_FILE
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.data.setdefault("stages", {})
        self.data.setdefault("runs", [])
        self.data.update(protocol=proto["name"], quick=proto["quick"])

    def finished(self, s: Stage) -> bool:
        e = self.data["stages"].get(s.name)
        return bool(e) and e.get("key") == s.key and e.get("status") == "finished"

    def entry(self, name: str) -> dict:
        return self.data["stages"].get(name, {})

    def start(self, s: Stage, out: Path) -> None:
        e = self.data["stages"].get(s.name)
        if not e or e.get("key") != s.key:  # new settings: earlier outputs are stale (same key: resume them)
            for rel in s.outputs:
                p = out / rel
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        self.data["stages"][s.name] = {"key": s.key, "status": "running", "deps": list(s.deps)}
        self.save()

    def finish(self, s: Stage, result: dict, wall: float, threads: int) -> None:
        status = "skipped" if "skipped" in result else "finished"  # skipped stages are retried next run
        self.data["stages"][s.name] = {"key": s.key, "status": status, "deps": list(s.deps), "wall_time_s": wall,
                                       "threads": threads, "result": result}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.path)


def execute(stages: list[Stage], ctx: st.StageContext, log: StageLog, *, jobs: int, threads: int,
            echo: Callable[[str], None] = print) -> dict:
    """Run unfinished stages: serial ones in this process, the others in `jobs` worker processes.

    A ready serial stage waits for the workers to drain (it needs both cores) and blocks new
    submissions meanwhile; with `threads` = 1 serial stages go to the workers too. Results never depend
    on `jobs` (every stage is seeded; worker stages are 1-threaded).
    """
    import torch

    out = Path(ctx.out)
    done = {s.name for s in stages if log.finished(s)}
    # A finished stage whose outputs are gone (a fresh machine: work/ is not committed) is redone when a stage
    # that will run needs it; stages nothing pending depends on stay finished (their results are recorded).
    by_name = {s.name: s for s in stages}
    while True:
        needed = {d for s in stages if s.name not in done and not s.tolerates_missing for d in s.deps}
        lost = {n for n in needed & done if any(not (out / o).exists() for o in by_name[n].outputs)}
        if not lost:
            break
        done -= lost
    skipped_now = [s.name for s in stages if s.name in done]
    for name in skipped_now:
        echo(f"  {name}: finished earlier, skipped")
    pending = [s for s in stages if s.name not in done]
    unavailable: set[str] = set()
    ran: list[str] = []
    running: dict[Future, Stage] = {}
    pool = None
    if jobs > 1 and any(not s.serial for s in pending):
        pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init)

    def record(s: Stage, result: dict, wall: float, n_threads: int) -> None:
        log.finish(s, result, wall, n_threads)
        if "skipped" in result:
            unavailable.add(s.name)
            echo(f"  {s.name}: skipped — {result['skipped']}")
        else:
            done.add(s.name)
            echo(f"  {s.name}: done in {wall:.1f} s")
        ran.append(s.name)

    try:
        while pending or running:
            launched = False
            for s in list(pending):
                if any(d in unavailable for d in s.deps):
                    pending.remove(s)
                    record(s, {"skipped": f"needs {', '.join(d for d in s.deps if d in unavailable)}"}, 0.0, 0)
                    launched = True
                    continue
                if not all(d in done for d in s.deps):
                    continue
                if (s.serial and threads > 1) or pool is None:
                    if running:
                        break  # a serial stage needs the machine: let the workers drain first
                    pending.remove(s)
                    log.start(s, out)
                    echo(f"  {s.name}: running")
                    n_threads = threads if s.serial else 1
                    old = torch.get_num_threads()
                    torch.set_num_threads(n_threads)
                    try:
                        result, wall = _call(s.fn, ctx, s.params)
                    finally:
                        torch.set_num_threads(old)
                    record(s, result, wall, n_threads)
                    launched = True
                    break  # dependencies changed: rescan from the top
                if len(running) >= jobs:
                    continue
                pending.remove(s)
                log.start(s, out)
                echo(f"  {s.name}: running (worker)")
                running[pool.submit(_call, s.fn, ctx, s.params)] = s
                launched = True
            if running and (not launched or len(running) >= jobs):
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in finished:
                    s = running.pop(f)
                    result, wall = f.result()  # a failing stage stops the run; finished ones stay recorded
                    record(s, result, wall, 1)
            elif not running and not launched and pending:
                raise RuntimeError(f"stages with unmet dependencies: {[s.name for s in pending]}")
    finally:
        if pool is not None:
            for f in running:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
    return {"ran": ran, "skipped": skipped_now}


def adopt_finished(stages: list[Stage], src: Path, log: StageLog, out: Path) -> list[str]:
    """Copy into `out` the stages another results folder `src` finished with the same keys (a key is a hash of
    every setting and input a stage depends on, so its result is the same) and whose outputs it still holds;
    returns their names. E.g. a zero-shot run reuses the protocol's calibration rows and bootstrap."""
    path = src / STAGES_FILE
    if not path.is_file():
        return []
    theirs = json.loads(path.read_text()).get("stages", {})
    adopted = []
    for s in stages:
        e = theirs.get(s.name)
        if log.finished(s) or not e or e.get("key") != s.key or e.get("status") != "finished":
            continue
        if not all((src / rel).exists() for rel in s.outputs):
            continue
        for rel in s.outputs:
            dst = out / rel
            if (src / rel).is_dir():
                shutil.copytree(src / rel, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, dst)
        log.data["stages"][s.name] = {**e, "adopted_from": str(src)}
        adopted.append(s.name)
    log.save()
    return adopted


def run_protocol(name: str, *, quick: bool = False, out: str | None = None, data_dir: str | None = None,
                 jobs: int | None = None, threads: int | None = None, overrides: dict | None = None,
                 reuse: str | None = None, only: list[str] | None = None,
                 echo: Callable[[str], None] = print) -> Path | None:
    """Run (or resume) one protocol; returns the results folder, or None when its data are absent.

    `only`: run just these stages (and whatever they depend on that is not finished); the report is still
    written from every finished stage."""
    import torch

    from evaluation.report import write_benchmark_report

    proto = load_protocol(name, quick=quick, overrides=overrides)
    stocks = proto.get("kind") == "stocks-timegan"  # the published TimeGAN setting (evaluation/stocks_timegan.py)
    resolved = resolve_data(proto, data_dir)
    if resolved is None and stocks:
        resolved = resolve_data(proto, str(TIMEGAN_STOCKS_DIR))
    if resolved is None:
        where = data_dir or "(no --data-dir)"
        echo(f"{proto['name']}: skipped — no {proto['data']} files in {where}; pass --data-dir FOLDER")
        return None
    source, files = resolved
    if proto.get("kind") == "crypto-panel":  # panels have their own runner (evaluation/crypto_panel.py)
        from evaluation import crypto_panel

        folder = Path(out) if out else (RESULTS_DIR / "quick" / proto["name"] if quick else RESULTS_DIR / proto["name"])
        folder.mkdir(parents=True, exist_ok=True)
        echo(f"{proto['name']}{' (quick)' if quick else ''} → {folder}")
        t0 = time.perf_counter()
        crypto_panel.run(proto, folder, files, echo=echo)
        echo(f"{proto['name']}: done in {time.perf_counter() - t0:.1f} s → {folder / 'report.md'}")
        return folder
    train = resolve_train_data(proto, data_dir)  # kronos.train_data: what Kronos trains on, if not `data`
    train_sha = {Path(f).name: sha256_file(f) for f in train[1]} if train else None
    jobs = int(jobs or proto["run"]["jobs"])
    threads = int(threads or proto["run"]["threads"])
    folder = Path(out) if out else (RESULTS_DIR / "quick" / proto["name"] if quick else RESULTS_DIR / proto["name"])
    folder.mkdir(parents=True, exist_ok=True)
    log = StageLog(folder, proto)
    if stocks:
        from evaluation import stocks_timegan

        stages = stocks_timegan.plan_stages(proto, {Path(f).name: sha256_file(f) for f in files})
    else:
        stages = plan(proto, {Path(f).name: sha256_file(f) for f in files}, train_sha)
    names = [s.name for s in stages]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise InputError(f"{proto['name']}: no stage {unknown} in this protocol — its stages: {', '.join(names)}")
        by_name, wanted, todo = {s.name: s for s in stages}, set(), list(only)
        while todo:
            n = todo.pop()
            if n not in wanted:
                wanted.add(n)
                todo += list(by_name[n].deps)
        stages = [s for s in stages if s.name in wanted]
    ctx = st.StageContext(proto=proto, out=str(folder), source=source, files=files,
                          train_source=train[0] if train else None)
    if reuse:
        adopted = adopt_finished(stages, Path(reuse), log, folder)
        if adopted:
            echo(f"  reused from {reuse} (same keys): {', '.join(adopted)}")
    echo(f"{proto['name']}{' (quick)' if quick else ''}: {len(stages)} stages → {folder} "
         f"[{jobs} worker{'s' * (jobs != 1)}, {threads} torch thread{'s' * (threads != 1)} for training/generation]")
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    old = torch.get_num_threads()
    try:
        summary = execute(stages, ctx, log, jobs=jobs, threads=threads, echo=echo)
    finally:
        torch.set_num_threads(old)
    elapsed = round(time.perf_counter() - t0, 3)
    log.data["runs"].append({"started": started, "elapsed_s": elapsed, "jobs": jobs, "threads": threads,
                             "cpus": os.cpu_count(), **summary})
    log.save()
    if stocks:
        stocks_timegan.write_report(proto, folder, log.data, names)
    else:
        write_benchmark_report(proto, folder, log.data, names)
    echo(f"{proto['name']}: done in {elapsed:.1f} s → {folder / 'report.md'}")
    return folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m evaluation.run", description=__doc__.splitlines()[0])
    ap.add_argument("protocols", nargs="+", metavar="PROTOCOL", help="protocol name(s) or .toml file(s)")
    ap.add_argument("--quick", action="store_true", help="toy sizes, end to end in about a minute")
    ap.add_argument("--out", default=None, help="results folder (one protocol only)")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR) if DEFAULT_DATA_DIR.is_dir() else None,
                    help="folder with the files of folder protocols (crypto-15m: *_15m.csv) "
                         "[default: evaluation.protocol.CRYPTO_DATA_DIR when it exists]")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: the protocol's run.jobs)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for training and generation (default: the protocol's run.threads)")
    ap.add_argument("--zero-shot", action="store_true",
                    help="the embedded default model as it is (no fine-tuning) against the block bootstrap; "
                         "results in evaluation/results/zero-shot/NAME")
    ap.add_argument("--only", action="append", default=None, metavar="STAGE",
                    help="run just this stage (repeatable) and its unfinished dependencies, e.g. forecast-calibration")
    args = ap.parse_args(argv)
    if args.out and len(args.protocols) > 1:
        print("error: --out takes one protocol", file=sys.stderr)
        sys.exit(2)
    try:
        for name in args.protocols:
            out, overrides, reuse = args.out, None, None
            if args.zero_shot:
                overrides = ZERO_SHOT
                out = out or str(RESULTS_DIR / ("quick" if args.quick else "") / "zero-shot" / Path(name).stem)
                # the protocol's own results hold the same calibration rows and bootstrap (same keys)
                reuse = str(RESULTS_DIR / ("quick" if args.quick else "") / Path(name).stem)
            run_protocol(name, quick=args.quick, out=out, data_dir=args.data_dir, jobs=args.jobs,
                         threads=args.threads, overrides=overrides, reuse=reuse, only=args.only)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
