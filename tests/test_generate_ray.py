"""`--engine ray`: same bytes as the in-process run, survives a killed worker, resumes; `run_tasks`."""

import json
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import torch

from kronos_synth.data.errors import InputError, KlineDataError
from kronos_synth.data.synthetic import MANIFEST, read_synthetic
from kronos_synth.generate.api import generate_dataset
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.ray_engine import RayConfig
from kronos_synth.generate.ray_session import run_tasks
from tests._tiny import save_tiny_model

N, PART = 40, 4  # 10 parts


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def ray_cluster():
    """A local 2-CPU Ray cluster shared by this module's tests (startup takes several seconds)."""
    ray = pytest.importorskip("ray")
    import logging

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tiny_model, tmp_path_factory) -> Path:
    """The reference: the same arguments on the in-process engine at 2 torch threads, while each Ray
    worker runs 1 — the bytes must not depend on the thread count."""
    out = tmp_path_factory.mktemp("local") / "synth"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _gen(tiny_model, out)
    finally:
        torch.set_num_threads(threads)
    return out


CALL = {"n", "out", "data", "dataset", "model", "tokenizer", "ray", "progress", "log"}


def _gen(tiny_model, out, **kw):
    args = dict(n=N, freq="daily", dataset="goog-daily", model=tiny_model, lookback=40, horizon=10, seed=3,
                dtype="fp32", batch_size=2, sequences_per_part=PART, out=str(out), progress=False)
    args.update(kw)
    settings = {k: v for k, v in args.items() if k not in CALL}
    return generate_dataset(GenerationConfig(**settings), **{k: v for k, v in args.items() if k in CALL})


def _ray(tiny_model, out, on_part=None, **kw):
    """generate_dataset(engine="ray") with an `on_part` hook (the library call under the API)."""
    from kronos_synth.generate import ray_engine

    if on_part is None:
        return _gen(tiny_model, out, ray=RayConfig(num_workers=2), **kw)
    original = ray_engine.generate_on_ray
    try:
        ray_engine.generate_on_ray = partial(original, on_part=on_part)
        return _gen(tiny_model, out, ray=RayConfig(num_workers=2), **kw)
    finally:
        ray_engine.generate_on_ray = original


def _parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))}


def _manifest_parts(folder: Path) -> list:
    return json.loads((folder / MANIFEST).read_text())["parts"]


def _busy_workers() -> list[int]:
    """Pids of Ray worker processes that are inside `ShardWorker.run_part` right now."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::ShardWorker.run_part"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


# First in the file: it starts its own local cluster in a subprocess, before this module's is up.
@pytest.mark.slow
def test_cli_engine_ray_end_to_end(tiny_model, tmp_path):
    pytest.importorskip("ray")
    r = _cli("generate", "--n", "6", "--freq", "daily", "--model", tiny_model, "--lookback", "30", "--horizon",
             "5", "--dtype", "fp32", "--out", str(tmp_path / "o"), "--engine", "ray", "--num-workers", "1",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[1 Ray worker]" in r.stdout and "Ray: 1 worker(s) on 1 node(s)" in r.stderr
    assert read_synthetic(tmp_path / "o").n_sequences == 6


@pytest.mark.slow
def test_ray_run_is_byte_identical_to_local_run(tiny_model, local_run, ray_cluster, tmp_path):
    summary = _ray(tiny_model, tmp_path / "r")
    assert summary.engine == "ray" and summary.workers == 2 and summary.parts_written == N // PART
    assert "[2 Ray workers]" in summary.line()
    assert _parts(tmp_path / "r") == _parts(local_run)  # every part, byte for byte
    assert _manifest_parts(tmp_path / "r") == _manifest_parts(local_run)
    manifest = json.loads((tmp_path / "r" / MANIFEST).read_text())
    assert manifest["complete"] and manifest["sequences"] == N
    pd.testing.assert_frame_equal(read_synthetic(tmp_path / "r").frame, read_synthetic(local_run).frame)
    # a rerun has nothing left to do, on either engine: the two engines write the same run
    assert _ray(tiny_model, tmp_path / "r").parts_written == 0
    assert _gen(tiny_model, tmp_path / "r").parts_skipped == N // PART


@pytest.mark.slow
def test_worker_killed_mid_run_is_replaced_without_gaps(tiny_model, local_run, ray_cluster, tmp_path):
    killed: list[int] = []

    def kill_a_worker(report):
        if killed:
            return
        # The reporting worker waits for its next part; kill the other one inside run_part if we catch
        # it there (a kill mid-part), else kill the reporter (a kill between parts). SIGKILL: no cleanup.
        victims = [p for p in _busy_workers() if p != report.pid] or [report.pid]
        os.kill(victims[0], signal.SIGKILL)
        killed.append(victims[0])

    summary = _ray(tiny_model, tmp_path / "r", on_part=kill_a_worker)
    assert killed and summary.worker_restarts == 1
    frame = read_synthetic(tmp_path / "r").frame
    per_id = frame.groupby("sequence_id").size()
    assert list(per_id.index) == list(range(N)) and (per_id == 10).all()  # none missing, none twice
    assert _parts(tmp_path / "r") == _parts(local_run)
    assert not list((tmp_path / "r").glob(".part-*"))  # no temp file of the killed write is left


@pytest.mark.slow
def test_interrupted_ray_run_resumes_per_part(tiny_model, local_run, ray_cluster, tmp_path):
    seen: list[int] = []

    def stop_after_three(report):
        seen.append(report.part)
        if len(seen) == 3:
            raise KeyboardInterrupt  # the driver is stopped: workers are killed, the manifest stays

    with pytest.raises(KeyboardInterrupt):
        _ray(tiny_model, tmp_path / "r", on_part=stop_after_three)
    manifest = json.loads((tmp_path / "r" / MANIFEST).read_text())
    assert not manifest["complete"] and sorted(p["index"] for p in manifest["parts"]) == sorted(seen)
    with pytest.raises(InputError, match="incomplete"):
        read_synthetic(tmp_path / "r")
    summary = _ray(tiny_model, tmp_path / "r")
    # parts on disk (the three recorded, plus any the other worker renamed after the stop) are kept
    assert summary.parts_skipped >= 3 and summary.parts_skipped + summary.parts_written == N // PART
    assert _parts(tmp_path / "r") == _parts(local_run)


@pytest.mark.slow
def test_run_tasks_keeps_order_and_unwraps_bad_input(ray_cluster):
    def _fail(exc: Exception) -> None:  # nested: pickled by value, so workers need not import this file
        raise exc

    assert run_tasks([partial(pow, 2, i) for i in range(6)], progress=False) == [1, 2, 4, 8, 16, 32]
    assert run_tasks([], progress=False) == []
    bad = KlineDataError("no close column", file="x.csv", column="close")
    with pytest.raises(KlineDataError) as err:
        run_tasks([partial(pow, 2, 1), partial(_fail, bad)], progress=False)
    assert type(err.value) is KlineDataError and "x.csv" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ZeroDivisionError):  # other errors keep Ray's wrapper, still of the cause's type
        run_tasks([partial(divmod, 1, 0)], progress=False)


def _cli(*args, cwd, pre=""):
    code = f"{pre}from kronos_synth.cli import main; main({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_engine_ray_without_ray_exits_2_with_install_hint(tiny_model, tmp_path):
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--out", str(tmp_path / "o"),
             "--engine", "ray", cwd=tmp_path, pre="import sys; sys.modules['ray'] = None; ")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert 'pip install "kronos-synth[ray]"' in lines[0] and not (tmp_path / "o").exists()


def test_ray_options_need_engine_ray(tiny_model, tmp_path):
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", tiny_model, "--out", str(tmp_path / "o"),
             "--num-workers", "2", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "need --engine ray" in r.stderr


@pytest.mark.slow
def test_ray_panels_are_byte_identical_to_local(tiny_model, ray_cluster, tmp_path):
    from kronos_synth.data.datasets import load_dataset

    both = pd.concat([load_dataset("sp500-daily"), load_dataset("nasdaq-daily")], ignore_index=True)
    both.to_csv(tmp_path / "both.csv", index=False)
    kw = dict(data=str(tmp_path / "both.csv"), dataset=None, panel=("SPX", "IXIC"), n=10, contexts_per_symbol=30)
    _gen(tiny_model, tmp_path / "local", **kw)
    _ray(tiny_model, tmp_path / "ray", **kw)
    assert _parts(tmp_path / "ray") == _parts(tmp_path / "local") and len(_parts(tmp_path / "local")) == 5
    bars, symbols = read_synthetic(tmp_path / "ray").to_panels()
    assert bars.shape == (10, 2, 10, 6) and symbols == ("SPX", "IXIC")
