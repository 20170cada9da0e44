"""Every bad-input case through the CLI: exit 2, one stderr line naming file/column/row, no traceback."""

from __future__ import annotations

import gzip

import pytest

from kronos_synth.cli import main

GOOD = [
    "timestamp,open,high,low,close,volume",
    "2024-01-01,10,11,9,10.5,100",
    "2024-01-02,10.5,12,10,11,120",
    "2024-01-03,11,11.5,10.2,10.8,90",
    "2024-01-04,10.8,11.2,10.1,11.1,80",
]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code), out, err


def write(tmp_path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def with_row(row: int, text: str) -> list[str]:
    """GOOD with data row `row` (0-based) replaced."""
    lines = list(GOOD)
    lines[row + 1] = text
    return lines


def assert_one_line(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


CASES = {
    # name: (file lines, expected substrings: column and row)
    "missing_price_column": (
        [ln.rsplit(",", 2)[0] + "," + ln.rsplit(",", 1)[1] for ln in GOOD],  # drops `close`
        ["column 'close'", "required column missing"],
    ),
    "nan_price": (with_row(2, "2024-01-03,11,,10.2,10.8,90"), ["column 'high'", "row 2", "NaN"]),
    "inf_price": (with_row(1, "2024-01-02,10.5,inf,10,11,120"), ["column 'high'", "row 1", "not finite"]),
    "non_positive_price": (with_row(3, "2024-01-04,10.8,11.2,0,11.1,80"), ["column 'low'", "row 3", "not positive"]),
    "high_below_low": (with_row(2, "2024-01-03,11,10,10.5,10.8,90"), ["column 'high'", "row 2", "below low"]),
    "duplicate_timestamp": (with_row(2, "2024-01-02,11,11.5,10.2,10.8,90"), ["column 'timestamp'", "row 2", "duplicate"]),
    "unsorted_timestamp": (with_row(3, "2023-12-31,10.8,11.2,10.1,11.1,80"), ["column 'timestamp'", "row 3", "not sorted"]),
    "negative_volume": (with_row(1, "2024-01-02,10.5,12,10,11,-5"), ["column 'volume'", "row 1", "negative"]),
    "not_a_number": (with_row(1, "2024-01-02,10.5,12,abc,11,120"), ["column 'low'", "row 1", "not a number"]),
    "bad_timestamp": (with_row(2, "yesterday,11,11.5,10.2,10.8,90"), ["column 'timestamp'", "row 2", "cannot parse"]),
    "header_only": (GOOD[:1], ["no data rows"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_csv_exits_2_with_one_line(case, tmp_path, capsys):
    lines, needles = CASES[case]
    path = write(tmp_path, f"{case}.csv", lines)
    code, out, err = run(["datasets", "check", path], capsys)
    assert code == 2
    assert_one_line(err, path, *needles)


def test_not_covering_is_warning_unless_strict(tmp_path, capsys):
    # high 10.6 is below close 10.8 in data row 2
    path = write(tmp_path, "cover.csv", with_row(2, "2024-01-03,11,11.5,10.2,11.6,90"))
    code, out, err = run(["datasets", "check", path], capsys)
    assert code == 0
    assert "not covering open/close: 1" in out
    assert_one_line(err, "warning", path, "row 2", "column 'high'")
    code, out, err = run(["datasets", "check", path, "--strict"], capsys)
    assert code == 2
    assert_one_line(err, path, "row 2", "column 'high'", "do not cover")


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    code, _, err = run(["datasets", "check", str(path)], capsys)
    assert code == 2
    assert_one_line(err, str(path), "empty")


def test_unknown_file_type(tmp_path, capsys):
    path = write(tmp_path, "prices.xlsx", GOOD)
    code, _, err = run(["datasets", "check", path], capsys)
    assert code == 2
    assert_one_line(err, path, "unknown file type")


def test_unreadable_parquet(tmp_path, capsys):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    code, _, err = run(["datasets", "check", str(path)], capsys)
    assert code == 2
    assert_one_line(err, str(path), "cannot read")


def test_corrupt_gzip(tmp_path, capsys):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress("\n".join(GOOD).encode())[:-20])
    code, _, err = run(["datasets", "check", str(path)], capsys)
    assert code == 2
    assert_one_line(err, str(path), "cannot read")


def test_missing_file_and_unknown_dataset_list_embedded_names(tmp_path, capsys):
    missing = str(tmp_path / "nope.csv")
    code, _, err = run(["datasets", "check", missing], capsys)
    assert code == 2
    assert_one_line(err, missing, "not found")
    code, _, err = run(["datasets", "show", "no-such-dataset"], capsys)
    assert code == 2
    assert_one_line(err, "no-such-dataset", "sp500-daily", "eurusd-1h")


def test_too_few_rows_for_window(tmp_path, capsys):
    path = write(tmp_path, "short.csv", GOOD)
    code, _, err = run(["datasets", "check", path, "--window", "5"], capsys)
    assert code == 2
    assert_one_line(err, path, "too few rows", "4 rows", "needs 5")
    code, _, _ = run(["datasets", "check", path, "--window", "4"], capsys)
    assert code == 0


def test_error_names_column_as_spelled_in_file(tmp_path, capsys):
    lines = ["Date,Open,High,Low,Close"] + [ln.rsplit(",", 1)[0] for ln in GOOD[1:]]
    lines[3] = "2024-01-03,11,11.5,10.2,-1"
    path = write(tmp_path, "caps.csv", lines)
    code, _, err = run(["datasets", "check", path], capsys)
    assert code == 2
    assert_one_line(err, "column 'Close'", "row 2")


def test_good_file_passes(tmp_path, capsys):
    path = write(tmp_path, "good.csv", GOOD)
    code, out, err = run(["datasets", "check", path, "--freq", "daily"], capsys)
    assert code == 0 and err == ""
    assert "4 rows" in out and "cleaning (daily)" in out
