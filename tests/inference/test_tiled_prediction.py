"""Padding to multiples of 8, tile planning and blending, tiled vs untiled prediction, tile size from a budget."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.inference import memory
from ifan_tf.inference.padding import padded_size, reflect_indices_tf, reflect_pad
from ifan_tf.inference.predictor import Predictor
from ifan_tf.inference.tiling import grid_plan, image_plan, tile_count, tiled_deblur
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


def _check_axis(plan, size, overlap, fixed_length=None):
    """Coverage, partition of unity and gaps of one axis; returns (count, length)."""
    starts, length, weights = plan.starts.numpy(), int(plan.length), plan.weights.numpy()
    assert length % 8 == 0 and length <= size and weights.shape == (len(starts), length)
    assert fixed_length is None or length == fixed_length
    assert all(s % 8 == 0 for s in starts) and starts[0] == 0 and starts[-1] + length == size
    gaps = np.diff(starts)
    assert np.all(gaps > 0) and np.all(length - gaps >= overlap)  # neighbours overlap by >= overlap
    if len(gaps):
        assert gaps.max() - gaps.min() <= 8  # evenly spaced: no tile shifted onto the border
    total = np.zeros(size)
    for start, weight in zip(starts, weights):
        total[start:start + length] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    if len(starts) > 1:
        assert np.all(weights[1][: overlap // 4] == 0)  # tile borders do not contribute
    return len(starts), length


def _best_work(units_y, units_x, tile, overlap):
    """Brute force: the fewest 8-pixel units any feasible grid of equal, balanced tiles computes."""
    budget, overlap_units, best = (tile // 8) ** 2, -(-overlap // 8), None
    for count_y in range(1, units_y + 1):
        length_y = -(-(units_y + (count_y - 1) * overlap_units) // count_y)
        if count_y > 1 and length_y <= overlap_units:
            break
        for count_x in range(1, units_x + 1):
            length_x = -(-(units_x + (count_x - 1) * overlap_units) // count_x)
            if count_x > 1 and length_x <= overlap_units:
                break
            if length_y * length_x <= budget:
                work = count_y * length_y * count_x * length_x
                best = work if best is None else min(best, work)
                break  # more columns only add work
    return best


def _sizes(rng, count):
    """Axis sizes 1..5000 (small, odd, multiples of 8, large) and tile sizes 256..2048."""
    fixed = [(1, 1, 256, 32), (720, 1280, 1024, 32), (1080, 1920, 1024, 32), (3000, 4000, 1024, 32),
             (4000, 6000, 1024, 32), (5000, 5000, 2048, 64), (8, 5000, 256, 248), (5000, 1, 256, 0),
             (1024, 1024, 1024, 32), (1025, 1024, 1024, 32), (2048, 512, 1024, 100)]
    drawn = [(int(rng.integers(1, 5001)), int(rng.integers(1, 5001)), int(rng.integers(32, 257)) * 8,
              int(rng.integers(0, 129))) for _ in range(count)]
    return fixed + drawn


def test_balanced_plan_covers_fits_the_budget_and_does_minimal_work():
    for height, width, tile, overlap in _sizes(np.random.default_rng(29), 60):
        size_y, size_x = padded_size(height), padded_size(width)
        rows, cols = image_plan(height, width, tile, overlap)
        count_y, length_y = _check_axis(rows, size_y, overlap)
        count_x, length_x = _check_axis(cols, size_x, overlap)
        assert length_y * length_x <= tile * tile, (height, width, tile)  # every tile within the budget
        if size_y * size_x <= tile * tile:
            assert (count_y, count_x) == (1, 1)  # fits: one tile, the untiled computation
        # work = image area plus at most one overlap (rounded up to 8) + 8 pixels per seam and axis
        seam = -(-overlap // 8) * 8 + 8
        assert count_y * length_y <= size_y + (count_y - 1) * seam
        assert count_x * length_x <= size_x + (count_x - 1) * seam
        assert count_y * length_y * count_x * length_x == 64 * _best_work(size_y // 8, size_x // 8, tile, overlap)
        assert tile_count(height, width, tile, overlap) == count_y * count_x


def test_fixed_tile_plan_balances_the_overlaps():
    for height, width, tile, overlap in _sizes(np.random.default_rng(30), 30):
        size_y, size_x = max(padded_size(height), tile), max(padded_size(width), tile)
        rows, cols = image_plan(height, width, tile, overlap, fixed_tile=True)
        for plan, size in ((rows, size_y), (cols, size_x)):
            count, _ = _check_axis(plan, size, overlap, fixed_length=tile)
            step = tile - -(-overlap // 8) * 8
            assert count == (1 if size <= tile else -(-(size - tile) // step) + 1)  # the fewest tiles
    rows, cols = image_plan(720, 1280, 512, 32, fixed_tile=True)
    assert rows.starts.numpy().tolist() == [0, 208] and cols.starts.numpy().tolist() == [0, 384, 768]


def test_plan_errors():
    with pytest.raises(ValueError, match="overlap"):
        image_plan(256, 256, 64, 60)
    with pytest.raises(ValueError, match="multiple of 8"):
        image_plan(256, 256, 60, 8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 8"):
        grid_plan(250, 256, 64, 8)


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
    # a tile budget as large as the padded image's area is the untiled computation, bit for bit,
    # even when the tile side (176) is shorter than the image (152x200 = 30400 <= 176 * 176)
    np.testing.assert_array_equal(Predictor(network, tile=176, tile_overlap=32).deblur(image), whole)
    assert Predictor(network, tile=168, tile_overlap=32).tile_count(152, 200) > 1


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
