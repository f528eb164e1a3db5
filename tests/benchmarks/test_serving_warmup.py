"""``python -m benchmarks.serving_warmup``: its requests differ from the warm-up ones (one tiled, one
whole), and ``--quick`` runs end to end in fresh processes and prints the side-by-side table."""
import pytest

from benchmarks import serving_warmup
from ifan_tf.inference.tiling import tile_count
from ifan_tf.serving import warmup
from ifan_tf.serving.limits import ServingLimits


@pytest.mark.parametrize("tile", [128, 512, 1024])
def test_requests_are_new_sizes_one_tiled_one_whole(tile):
    sizes = serving_warmup.request_sizes(tile)
    limits = ServingLimits(tile=tile)
    warmed = {(warmup.float_image_side(limits),) * 2, warmup.encoded_image_size(limits)}
    assert not warmed & set(sizes.values())  # other shapes than the warm-up's, as real traffic
    assert tile_count(*sizes["jpeg"], tile, 32) > 1 and tile_count(*sizes["image"], tile, 32) == 1


@pytest.mark.slow
def test_quick_run(capsys):
    assert serving_warmup.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "model tiny, tile 128, 1 round(s)" in out
    assert "warm-up records: serving_default 128x128, deblur_encoded 104x160" in out
    for line in ("time to AVAILABLE", "first deblur_encoded JPEG 136x176", "steady serving_default float 96x128",
                 "first requests without / with warm-up: "):
        assert line in out, out
