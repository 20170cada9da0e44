import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from kronos_synth.data.synthetic import (
    MANIFEST,
    ParquetSequenceWriter,
    SyntheticDataError,
    read_part_metadata,
    read_synthetic,
    sequences_to_frame,
)

META = {"generator": "test", "seed": 0, "freq": "daily", "horizon": 5}


def _part_frame(writer: ParquetSequenceWriter, index: int) -> pd.DataFrame:
    start, stop = writer.part_range(index)
    ids = np.arange(start, stop)
    rng = np.random.default_rng(ids[0])
    values = 100 + rng.random((len(ids), 5, 6))
    ts = np.array([pd.bdate_range("2020-01-06", periods=5).to_numpy()] * len(ids))
    return sequences_to_frame(values, ts, ids, symbols="SPX", context_end=ts[:, 0] - np.timedelta64(1, "D"))


def _write_all(out, n=10, part=4, meta=META, stop_after=None):
    w = ParquetSequenceWriter(out, n=n, sequences_per_part=part, metadata=dict(meta))
    for k in w.pending_parts()[:stop_after]:
        w.write_part(k, _part_frame(w, k))
    return w


def test_roundtrip_schema_and_values(tmp_path):
    w = _write_all(tmp_path / "ds")
    assert w.complete and w.n_parts == 3
    ds = read_synthetic(tmp_path / "ds")
    assert ds.n_sequences == 10
    arr = ds.to_array()
    assert arr.shape == (10, 5, 6)
    assert ds.metadata["generator"] == "test" and ds.metadata["schema_version"] == 1
    assert "created_at" not in ds.metadata  # kept in the manifest so parts are byte-identical
    manifest = json.loads((tmp_path / "ds" / MANIFEST).read_text())
    assert manifest["complete"] and manifest["sequences"] == 10 and manifest["rows"] == 50
    assert "created_at" in manifest["metadata"]
    # values equal the ones written
    np.testing.assert_array_equal(arr[4:8], 100 + np.random.default_rng(4).random((4, 5, 6)))
    # other readers see the same documented schema
    table = pads.dataset(str(tmp_path / "ds"), format="parquet").to_table()
    assert table.num_rows == 50
    assert str(table.schema.field("symbol").type) == "dictionary<values=string, indices=int32, ordered=0>"
    assert str(table.schema.field("timestamp").type) == "timestamp[ns]"
    assert str(table.schema.field("step").type) == "int32"


def test_resume_writes_only_missing_parts_and_same_bytes(tmp_path):
    _write_all(tmp_path / "a", stop_after=1)  # interrupted after its first part
    w = ParquetSequenceWriter(tmp_path / "a", n=10, sequences_per_part=4, metadata=dict(META))
    assert w.pending_parts() == [1, 2]
    with pytest.raises(SyntheticDataError, match="incomplete"):
        read_synthetic(tmp_path / "a")
    for k in w.pending_parts():
        w.write_part(k, _part_frame(w, k))
    _write_all(tmp_path / "b")
    ids = read_synthetic(tmp_path / "a").frame["sequence_id"]
    assert sorted(ids.unique()) == list(range(10))
    for k in range(3):
        name = f"part-{k:05d}.parquet"
        ha = hashlib.sha256((tmp_path / "a" / name).read_bytes()).hexdigest()
        hb = hashlib.sha256((tmp_path / "b" / name).read_bytes()).hexdigest()
        assert ha == hb


def test_other_run_in_folder_is_refused(tmp_path):
    _write_all(tmp_path / "a")
    with pytest.raises(SyntheticDataError, match="different run"):
        ParquetSequenceWriter(tmp_path / "a", n=10, sequences_per_part=4, metadata={**META, "seed": 1})


def test_no_half_part_left_and_part_metadata(tmp_path):
    w = _write_all(tmp_path / "a")
    assert not list((tmp_path / "a").glob(".*tmp*"))
    meta = read_part_metadata(tmp_path / "a" / "part-00001.parquet")
    assert meta["sequence_range"] == [4, 8] and meta["run_key"] == w.key


def test_part_must_hold_its_ids(tmp_path):
    w = ParquetSequenceWriter(tmp_path / "a", n=10, sequences_per_part=4, metadata=dict(META))
    with pytest.raises(ValueError, match="sequence ids 4..7"):
        w.write_part(1, _part_frame(w, 0))


def test_reader_rejects_non_finite_and_missing_columns(tmp_path):
    w = ParquetSequenceWriter(tmp_path / "a", n=4, sequences_per_part=4, metadata=dict(META))
    frame = _part_frame(w, 0)
    frame.loc[7, "close"] = np.nan
    w.write_part(0, frame)
    with pytest.raises(SyntheticDataError, match="column 'close', row 7"):
        read_synthetic(tmp_path / "a")
    pd.DataFrame({"sequence_id": [0], "step": [0]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(SyntheticDataError, match="column 'timestamp' is missing"):
        read_synthetic(tmp_path / "x.parquet")


def test_n_must_be_positive(tmp_path):
    from kronos_synth.data.errors import InputError

    with pytest.raises(InputError, match="positive"):
        ParquetSequenceWriter(tmp_path / "a", n=0, sequences_per_part=4, metadata=dict(META))
