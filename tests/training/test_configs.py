"""configs/ifan.py: the paper's settings by default, and every variant gives a valid model."""
import pytest

from tiny_training_setup import load_config

from ifan_tf.model.config import ModelConfig


def test_default_is_the_papers_training_recipe():
    config = load_config()
    assert ModelConfig.from_dict(config.model.to_dict()) == ModelConfig()  # N = 17, width 32, separable IAC
    train = config.train
    assert (train.learning_rate, train.beta_1, train.beta_2, train.epsilon) == (1e-4, 0.9, 0.999, 1e-8)
    assert (train.weight_decay, train.clip_norm) == (0.01, 0.5)
    assert (train.num_steps, tuple(train.lr_boundaries), train.lr_decay_factor) == (600_000, (500_000, 550_000), 0.5)
    assert (train.batch_size, config.data.crop_size, config.data.augment) == (8, 256, True)
    assert train.precision == "float32" and not train.jit_compile


@pytest.mark.parametrize("n", [8, 17, 26, 35, 44])
def test_iteration_variants(n):
    assert load_config(f"n{n}").model.num_iterations == n


@pytest.mark.parametrize("name, iac, dme, rbn", [
    ("B", False, False, False), ("D", False, True, False), ("F", True, False, False),
    ("FD", True, True, False), ("FR", True, False, True), ("IFAN", True, True, True)])
def test_table1_ablations(name, iac, dme, rbn):
    model = ModelConfig.from_dict(load_config(name).model.to_dict())
    assert (model.use_iac, model.use_dme, model.use_rbn) == (iac, dme, rbn)


def test_other_variants_and_combinations():
    config = load_config("n26,dual,16bit")
    assert config.model.num_iterations == 26 and config.model.dual_pixel_input
    assert config.data.bit_depth == 16 and "16bit" in config.data.train
    assert "synthetic" in load_config("synthetic").data.train
    assert load_config("bf16").train.precision == "bfloat16"
    assert load_config("fp16").train.precision == "float16"
    assert load_config("xla").train.jit_compile
    demo = load_config("demo")
    ModelConfig.from_dict(demo.model.to_dict())
    assert demo.train.max_minutes > 0 and demo.data.crop_size < 256 and not demo.train.jit_compile
    assert demo.demo.val_photos and set(demo.demo.val_photos).isdisjoint(demo.demo.train_photos)
    # the demo trains the FR variant (no disparity supervision); demo,IFAN the full model
    assert (demo.model.use_iac, demo.model.use_dme, demo.model.use_rbn) == (True, False, True)
    assert load_config("demo,IFAN").model.use_dme


def test_unknown_variant_is_an_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="known variants: .*n8"):
        load_config("n9")
