"""Named configs: parameter counts are the free self-check of the architecture."""

import pytest
import torch

from kronos_synth.model import NAMED_CONFIGS, Kronos, KronosCheckpointError, KronosTokenizer, named_config


@pytest.mark.parametrize("name, params", [
    ("Kronos-mini", 4_108_032), ("Kronos-small", 24_741_376), ("Kronos-base", 102_310_592),
    ("Kronos-Tokenizer-2k", 3_958_042), ("Kronos-Tokenizer-base", 3_958_042),
])
def test_parameter_counts_match_the_release(name, params):
    named = named_config(name)
    cls = Kronos if named.kind == "predictor" else KronosTokenizer
    with torch.device("meta"):  # no memory, no init cost
        model = cls.from_config(name)
    assert sum(p.numel() for p in model.parameters()) == params == named.params
    assert model.config == named.config


def test_named_config_details():
    assert named_config("NeoQuasar/Kronos-small").hub_id == "NeoQuasar/Kronos-small"
    assert named_config("Kronos-mini").context == 2048 and named_config("Kronos-base").context == 512
    assert named_config("Kronos-mini").tokenizer == "Kronos-Tokenizer-2k"
    assert named_config("Kronos-Tokenizer-2k").config["group_size"] == 5
    assert named_config("Kronos-Tokenizer-base").config["group_size"] == 4
    assert set(NAMED_CONFIGS) == {"Kronos-mini", "Kronos-small", "Kronos-base", "Kronos-Tokenizer-2k",
                                  "Kronos-Tokenizer-base"}
    with pytest.raises(KeyError, match="Kronos-large"):
        named_config("Kronos-large")
    with pytest.raises(KronosCheckpointError, match="is a tokenizer config"):
        Kronos.from_config("Kronos-Tokenizer-2k")
    with pytest.raises(KronosCheckpointError, match="unknown config key 'context'"):
        Kronos.from_config({**named_config("Kronos-mini").config, "context": 2048})
