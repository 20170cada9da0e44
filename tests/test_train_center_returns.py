"""Fine-tuning into `center_returns` (no trend carried on) and its protocol key."""

import json

import pytest
from _train_util import tiny_tokenizer

from evaluation.protocol import ProtocolError, load_protocol
from evaluation.run import plan
from kronos_synth.data.errors import InputError
from kronos_synth.model.representation import Geometry, Levels
from kronos_synth.train.tokenizer import check_same_representation


def test_center_returns_may_change_in_a_fine_tune_but_nothing_else():
    check_same_representation("x", Geometry(), Geometry(center_returns=True))
    with pytest.raises(InputError, match="cannot change the representation"):
        check_same_representation("x", Geometry(), Geometry(clip=5.0, center_returns=True))
    with pytest.raises(InputError, match="cannot change the representation"):
        check_same_representation("x", Levels(), Geometry())


@pytest.fixture(scope="module")
def geometry_tokenizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("geo") / "tok"
    from kronos_synth.train import prepare_training_data

    td = prepare_training_data(["sp500-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=16,
                               representation="geometry")
    tiny_tokenizer(out, td, steps=2, eval_every=2)
    return out


def test_fine_tune_records_center_returns_and_levels_refuses_it(geometry_tokenizer, tmp_path):
    res = tiny_tokenizer(tmp_path / "c", ["sp500-daily"], config=None, init=str(geometry_tokenizer), steps=2,
                         eval_every=2, freq="daily", lookback=40, horizon=10, center_returns=True)
    side = json.loads((res.out / "kronos_synth.json").read_text())
    assert side["representation"] == "geometry" and side["center_returns"] is True
    with pytest.raises(InputError, match="center_returns needs representation='geometry'"):
        tiny_tokenizer(tmp_path / "l", ["sp500-daily"], steps=2, freq="daily", lookback=40, horizon=10,
                       representation="levels", center_returns=True)


def test_protocol_key_changes_the_training_stages_only_when_set():
    a = {s.name: s for s in plan(load_protocol("goog-daily", quick=True,
                                               overrides={"kronos": {"center_returns": False}}))}
    b = {s.name: s for s in plan(load_protocol("goog-daily", quick=True,
                                               overrides={"kronos": {"center_returns": True}}))}
    assert "center_returns" not in json.dumps(a["tokenizer"].settings, default=str)
    assert a["tokenizer"].key != b["tokenizer"].key and a["data"].key == b["data"].key
    with pytest.raises(ProtocolError, match="center_returns needs representation = 'geometry'"):
        load_protocol("goog-daily", quick=True,
                      overrides={"kronos": {"center_returns": True, "representation": "levels", "init": "scratch"}})
