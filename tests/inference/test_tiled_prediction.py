"""Padding to multiples of 8, tile planning and blending, tiled vs untiled prediction, tile size from a budget."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.inference import memory
from ifan_tf.inference.padding import padded_size, reflect_indices_tf, reflect_pad
from ifan_tf.inference.predictor import Predictor
from ifan_tf.inference.tiling import axis_plan, tile_count, tiled_deblur
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan

# Tiled vs untiled on the tiny random model (152x200 image, 64-pixel tiles, 32 overlap): measured
# max |diff| 0.0043, mean 0.00024. Tiles see zero padding where the whole image has neighbours,
# and IFAN's receptive field (hundreds of pixels) exceeds any overlap, so pixels near seams differ
# slightly; the windows make it a smooth blend. Tolerances leave ~2x headroom.
TILED_MAX_DIFF, TILED_MEAN_DIFF = 0.01, 0.0005


@pytest.fixture(scope="module")
def network():
    keras.utils.set_random_seed(4)
    return build_ifan(ModelConfig(width=8, num_iterations=3))


def _image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    smooth = np.stack([np.sin(6 * x + 1), np.cos(5 * y), np.sin(4 * (x + y))], axis=-1) * 0.35 + 0.5
    return np.clip(smooth + rng.normal(0, 0.03, smooth.shape), 0, 1).astype(np.float32)


def _reflect(size, new_size):
    return reflect_indices_tf(size, new_size).numpy()


def test_reflect_padding_any_size():
    np.testing.assert_array_equal(_reflect(5, 9), np.pad(np.arange(5), (0, 4), mode="reflect"))
    np.testing.assert_array_equal(_reflect(1, 8), np.zeros(8))
    np.testing.assert_array_equal(_reflect(2, 8), [0, 1, 0, 1, 0, 1, 0, 1])
    for height, width in [(1, 1), (3, 5), (7, 13), (8, 8), (9, 17)]:
        image = np.random.default_rng(height).uniform(size=(height, width, 3)).astype(np.float32)
        padded = reflect_pad(tf.constant(image[None]))[0].numpy()
        assert padded.shape == (padded_size(height), padded_size(width), 3)
        np.testing.assert_array_equal(padded[:height, :width], image)
        expected = image[_reflect(height, padded_size(height))][:, _reflect(width, padded_size(width))]
        np.testing.assert_array_equal(padded, expected)


def test_tile_plan_and_partition_of_unity():
    for size, tile, overlap in [(200, 64, 16), (1000, 256, 32), (64, 64, 32), (72, 64, 8), (4000, 1024, 64)]:
        size8 = padded_size(size)
        plan = axis_plan(size8, tile, overlap)
        starts, length, weights = plan.starts.numpy(), int(plan.length), plan.weights.numpy()
        assert length == min(tile, size8) and weights.shape == (len(starts), length)
        assert all(s % 8 == 0 for s in starts) and starts[0] == 0
        assert starts[-1] + length == size8  # last tile shifted inward, no padding
        assert all(0 < b - a <= length - overlap for a, b in zip(starts, starts[1:]))
        total = np.zeros(size8)
        for start, weight in zip(starts, weights):
            total[start:start + length] += weight
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
        if len(starts) > 1:
            assert np.all(weights[1][: overlap // 4] == 0)  # tile borders do not contribute
    with pytest.raises(ValueError, match="overlap"):
        axis_plan(256, 64, 60)
    with pytest.raises(ValueError, match="multiple of 8"):
        axis_plan(256, 60, 8)


def test_tiled_blend_of_identity_is_exact():
    image = _image(37, 53)
    calls = []
    out = tiled_deblur(lambda tile: tile, image, tile=16, overlap=8, progress=lambda: calls.append(1)).numpy()
    np.testing.assert_allclose(out, image, atol=1e-6)
    assert len(calls) == tile_count(37, 53, 16, 8) > 9


def test_tiled_executor_in_a_graph_with_unknown_size():
    run = tf.function(lambda image: tiled_deblur(lambda tile: tile * 0.5, image, tile=32, overlap=16),
                      input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    for height, width in [(1, 1), (45, 70), (100, 33)]:
        image = _image(height, width, seed=width)
        np.testing.assert_allclose(run(image).numpy(), image * 0.5, atol=1e-6)


@pytest.mark.parametrize("height,width", [(5, 7), (16, 16), (40, 50)])
def test_fixed_tile_calls_always_get_the_tile_size(height, width):
    shapes = []

    def run_tile(tile):
        shapes.append(tuple(tile.shape))
        return tile[..., ::-1]

    image = _image(height, width, seed=3)
    out = tiled_deblur(run_tile, image, tile=16, overlap=8, fixed_tile=True).numpy()
    np.testing.assert_allclose(out, image[..., ::-1], atol=1e-6)
    assert set(shapes) == {(1, 16, 16, 3)} and len(shapes) == tile_count(height, width, 16, 8, fixed_tile=True)
    # the same through tf.numpy_function, the way a LiteRT interpreter is wrapped
    wrapped = lambda tile: tf.numpy_function(lambda t: t[..., ::-1].copy(), [tile], tf.float32)  # noqa: E731
    np.testing.assert_allclose(tiled_deblur(wrapped, image, 16, 8, fixed_tile=True).numpy(), out, atol=0)


def test_tiled_equals_untiled_within_tolerance(network):
    image = _image(152, 200)
    whole = Predictor(network).deblur(image)
    runs = []
    tiled = Predictor(network, tile=64, tile_overlap=32).deblur(image, progress=lambda: runs.append(1))
    assert len(runs) == tile_count(152, 200, 64, 32) > 4
    difference = np.abs(tiled - whole)
    assert difference.max() < TILED_MAX_DIFF and difference.mean() < TILED_MEAN_DIFF, (difference.max(), difference.mean())
    assert difference.max() > 0  # really tiled
    # a tile as large as the (padded) image is the untiled computation, bit for bit
    np.testing.assert_array_equal(Predictor(network, tile=208, tile_overlap=32).deblur(image), whole)


@pytest.mark.parametrize("height,width", [(1, 1), (7, 13), (8, 8), (19, 3)])
def test_odd_sizes_come_back_at_their_size(network, height, width):
    image = _image(height, width, seed=height)
    out = Predictor(network).deblur(image)
    assert out.shape == image.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    if height * width > 16:
        tiled = Predictor(network, tile=16, tile_overlap=8).deblur(image)
        assert tiled.shape == image.shape


def test_tile_size_from_memory_budget(network):
    width32 = 32
    assert memory.auto_tile_size(720, 1280, 4.0, "float32") is None  # fits untiled
    tile = memory.auto_tile_size(4000, 6000, 2.5, "float32")
    assert tile % 64 == 0 and 512 <= tile < 4000
    assert memory.estimated_peak_bytes(4000, 6000, tile, "float32", width32) <= 2.5 * memory.GB
    assert memory.auto_tile_size(4000, 6000, 3.0, "float32") >= tile  # more budget, larger tiles
    assert memory.auto_tile_size(4000, 6000, 0.5, "float32") == memory.MIN_TILE  # cannot fit: smallest
    predictor = Predictor(network, memory_budget_gb=0.0)  # forces the smallest tile
    assert predictor.tile_size_for(300, 300) == memory.MIN_TILE
    assert predictor.tile_count(300, 300) > 1
    assert Predictor(network).tile_size_for(3000, 3000) is None  # no budget, no tile: untiled
