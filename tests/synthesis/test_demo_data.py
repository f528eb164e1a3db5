"""``ifan_tf.synthesis.demo_data``: the demo's data set follows ``config.demo`` and is reused only when it matches."""
import json

import pytest

from configs import ifan as ifan_configs
from ifan_tf.synthesis.demo_data import synthesize_demo_data


def test_the_demo_data_follows_the_realism_switches_and_is_reused_only_when_they_match(tmp_path):
    demo_config = ifan_configs.get_config("demo").demo
    demo_config.update({"train_scenes": 1, "val_scenes": 1, "image_size": 32})
    data_dir = tmp_path / "data"
    summary_file = data_dir / "dataset_summary.json"
    announced = []
    synthesize_demo_data(demo_config, str(data_dir), announce=announced.append)
    made = json.loads(summary_file.read_text())["generator"]["config"]
    assert (made["layout"], made["noise_level"], made["jpeg_quality"]) == ("blobs", 0.0, 0)
    assert len(announced) == 1 and str(data_dir) in announced[0] and "held-out photographs" in announced[0]
    first = summary_file.stat().st_mtime_ns
    synthesize_demo_data(demo_config, str(data_dir), announce=announced.append)
    assert summary_file.stat().st_mtime_ns == first and len(announced) == 1  # same settings: reused, silently
    demo_config.update({"noise_level": 0.02, "jpeg_quality": 90, "layout": "segments"})
    synthesize_demo_data(demo_config, str(data_dir))
    made = json.loads(summary_file.read_text())["generator"]["config"]
    assert (made["layout"], made["noise_level"], made["jpeg_quality"]) == ("segments", 0.02, 90)


def test_held_out_photographs_may_not_be_trained_on(tmp_path):
    demo_config = ifan_configs.get_config("demo").demo
    demo_config.train_photos = tuple(demo_config.train_photos) + (demo_config.val_photos[0],)
    with pytest.raises(ValueError, match="held-out photographs must be unseen"):
        synthesize_demo_data(demo_config, str(tmp_path / "data"))
    assert not (tmp_path / "data").exists()
