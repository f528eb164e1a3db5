"""ifan_tf.model.precision: one vocabulary of compute precisions, Keras policy names accepted as aliases."""
import pytest

from configs import ifan as ifan_configs
from ifan_tf.model import precision


def test_names_map_to_keras_policies_and_policy_names_are_aliases():
    assert [precision.keras_policy(name) for name in precision.PRECISIONS] == [
        "float32", "mixed_bfloat16", "mixed_float16"]
    assert precision.canonical_precision("mixed_bfloat16") == "bfloat16"
    assert precision.keras_policy("mixed_float16") == "mixed_float16"
    assert precision.needs_loss_scaling("float16") and not precision.needs_loss_scaling("bfloat16")


def test_unknown_or_unsupported_names_are_refused_with_the_setting_name():
    with pytest.raises(ValueError, match=r"train.precision must be one of float32, bfloat16, float16, got 'fp8'"):
        precision.keras_policy("fp8", what="train.precision")
    with pytest.raises(ValueError, match="--precision must be one of float32, bfloat16"):
        precision.canonical_precision("float16", precision.INFERENCE_PRECISIONS, "--precision")


@pytest.mark.parametrize("variant", ["", "bf16", "fp16", "demo"])
def test_every_config_uses_the_vocabulary(variant):
    name = ifan_configs.get_config(variant).train.precision
    assert name in precision.PRECISIONS
