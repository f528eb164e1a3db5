"""The one TFRecord schema of ifan_tf: every writer and every reader goes through this module.

One `tf.train.Example` per scene, with these features:

| key                | type         | content                                                          |
|--------------------|--------------|------------------------------------------------------------------|
| `name`             | bytes        | scene name (UTF-8), unique within a data set, e.g. `1P0A1158`    |
| `height`, `width`  | int64        | image size in pixels, the same for every view                    |
| `bit_depth`        | int64        | 8 or 16: sample depth of every PNG of the scene                  |
| `views`            | bytes list   | views present, in the order of `VIEWS`: subset of c, l, r, target |
| `image/c`          | bytes        | defocused combined image C, lossless RGB PNG at `bit_depth`      |
| `image/l`          | bytes        | left dual-pixel view L (same format)                             |
| `image/r`          | bytes        | right dual-pixel view R (same format)                            |
| `image/target`     | bytes        | sharp all-in-focus ground truth (same format)                    |
| `defocus/coc`      | bytes        | optional, synthetic data only: signed circle-of-confusion        |
|                    |              | diameter in pixels, `[H, W] float32`, zlib-compressed            |
|                    |              | little-endian raw bytes; blur size = `abs(coc)`; positive behind |
|                    |              | the focal plane (farther than focus), negative in front          |
| `defocus/disparity`| bytes        | optional, synthetic data only: signed dual-pixel disparity in    |
|                    |              | pixels at full resolution, same encoding as `defocus/coc`        |
| `schema_version`   | int64        | `SCHEMA_VERSION`                                                 |

An absent view or map is stored as empty bytes. Images decode to float as `pixels / 255` (8 bit)
or `pixels / 65535` (16 bit).

Disparity sign convention (the one of the spec's disparity warp): `d` is the disparity of the
right view such that sampling the right view at `(x + d, y)` gives the left view:
`L(x, y) = R(x + d(x, y), y)`. In the synthetic data, `d` has the sign of the CoC: positive
behind the focal plane, negative in front of it, zero in focus.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Mapping

import numpy as np
import tensorflow as tf

from ifan_tf.data import integrity
from ifan_tf.io import image_io

SCHEMA_VERSION = 1
VIEWS = ("c", "l", "r", "target")
# Key of each view in the dicts yielded by the tf.data pipelines.
VIEW_OUTPUT_KEYS = {"c": "image", "l": "left", "r": "right", "target": "target"}
DEFOCUS_MAPS = ("coc", "disparity")

NAME_KEY = "name"
HEIGHT_KEY = "height"
WIDTH_KEY = "width"
BIT_DEPTH_KEY = "bit_depth"
VIEWS_KEY = "views"
VERSION_KEY = "schema_version"


def image_key(view: str) -> str:
    """Feature key of a view's PNG bytes, e.g. `image/l`."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views are {VIEWS}")
    return f"image/{view}"


def defocus_key(map_name: str) -> str:
    """Feature key of a synthetic ground-truth map, e.g. `defocus/disparity`."""
    if map_name not in DEFOCUS_MAPS:
        raise ValueError(f"unknown defocus map {map_name!r}; maps are {DEFOCUS_MAPS}")
    return f"defocus/{map_name}"


@dataclasses.dataclass
class Scene:
    """One scene in memory, as integer pixels.

    Attributes:
      name: scene name.
      views: view name ('c', 'l', 'r', 'target') -> `[H, W, 3]` uint8 (8 bit) or uint16 (16 bit) RGB.
      bit_depth: 8 or 16.
      defocus: optional map name ('coc', 'disparity') -> `[H, W] float32` (see module docstring).
    """

    name: str
    views: Mapping[str, np.ndarray]
    bit_depth: int
    defocus: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EncodedScene:
    """One scene with its images encoded: what one record holds, before serialisation."""

    name: str
    height: int
    width: int
    bit_depth: int
    png: Mapping[str, bytes]  # view -> PNG bytes, present views only
    defocus: Mapping[str, bytes] = dataclasses.field(default_factory=dict)  # map -> zlib bytes

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(view for view in VIEWS if view in self.png)


def _check_scene(scene: Scene) -> tuple[int, int]:
    if not scene.name:
        raise ValueError("scene name must not be empty")
    if scene.bit_depth not in image_io.SUPPORTED_BIT_DEPTHS:
        raise ValueError(f"scene {scene.name!r}: bit depth must be 8 or 16, got {scene.bit_depth}")
    unknown = set(scene.views) - set(VIEWS)
    if unknown or not scene.views:
        raise ValueError(f"scene {scene.name!r}: views must be a non-empty subset of {VIEWS}, got {sorted(scene.views)}")
    dtype = np.uint8 if scene.bit_depth == 8 else np.uint16
    shapes = {view: np.shape(pixels) for view, pixels in scene.views.items()}
    first = next(iter(shapes.values()))
    for view, pixels in scene.views.items():
        if pixels.dtype != dtype:
            raise ValueError(f"scene {scene.name!r}: view {view} is {pixels.dtype}, expected {np.dtype(dtype)} "
                             f"for bit depth {scene.bit_depth}")
        if len(shapes[view]) != 3 or shapes[view][2] != 3 or shapes[view] != first:
            raise ValueError(f"scene {scene.name!r}: views must all be [H, W, 3] of one size, got {shapes}")
    for map_name, values in scene.defocus.items():
        defocus_key(map_name)
        if np.shape(values) != first[:2]:
            raise ValueError(f"scene {scene.name!r}: defocus map {map_name} has shape {np.shape(values)}, "
                             f"expected {first[:2]}")
    return first[0], first[1]


def encode_scene(scene: Scene, png_compression: int = 1) -> EncodedScene:
    """Encodes a scene's views as PNG and its maps as zlib float32 (numpy/OpenCV only, thread-safe)."""
    height, width = _check_scene(scene)
    png = {view: image_io.encode_png(scene.views[view], png_compression) for view in VIEWS if view in scene.views}
    defocus = {
        map_name: zlib.compress(np.ascontiguousarray(values, dtype="<f4").tobytes(), 1)
        for map_name, values in scene.defocus.items()
    }
    return EncodedScene(scene.name, height, width, scene.bit_depth, png, defocus)


def _bytes_feature(values) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_scene(encoded: EncodedScene) -> bytes:
    """The serialized `tf.train.Example` of an encoded scene."""
    feature = {
        NAME_KEY: _bytes_feature([encoded.name.encode("utf-8")]),
        HEIGHT_KEY: _int_feature(encoded.height),
        WIDTH_KEY: _int_feature(encoded.width),
        BIT_DEPTH_KEY: _int_feature(encoded.bit_depth),
        VIEWS_KEY: _bytes_feature([view.encode("ascii") for view in encoded.views]),
        VERSION_KEY: _int_feature(SCHEMA_VERSION),
    }
    for view in VIEWS:
        feature[image_key(view)] = _bytes_feature([encoded.png.get(view, b"")])
    for map_name in DEFOCUS_MAPS:
        feature[defocus_key(map_name)] = _bytes_feature([encoded.defocus.get(map_name, b"")])
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def parse_scene_bytes(serialized: bytes, source: str = "<record>") -> EncodedScene:
    """Parses a serialized record in Python (no pixel decoding); errors name `source`."""
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception as error:  # protobuf raises its own DecodeError
        raise ValueError(f"{source}: not a tf.train.Example ({error})") from None
    features = example.features.feature

    def single(key, kind):
        if key not in features:
            raise ValueError(f"{source}: feature {key!r} is missing (not an ifan_tf record?)")
        values = getattr(features[key], kind).value
        if len(values) != 1:
            raise ValueError(f"{source}: feature {key!r} must hold one value, holds {len(values)}")
        return values[0]

    name = single(NAME_KEY, "bytes_list").decode("utf-8", errors="replace")
    where = f"{source} (scene {name!r})"
    views = [view.decode("ascii", errors="replace") for view in features[VIEWS_KEY].bytes_list.value] \
        if VIEWS_KEY in features else []
    png = {}
    for view in views:
        if view not in VIEWS:
            raise ValueError(f"{where}: unknown view {view!r}")
        data = single(image_key(view), "bytes_list")
        if not data:
            raise ValueError(f"{where}: view {view} is listed but its image is empty")
        png[view] = data
    defocus = {}
    for map_name in DEFOCUS_MAPS:
        key = defocus_key(map_name)
        if key in features and features[key].bytes_list.value and features[key].bytes_list.value[0]:
            defocus[map_name] = features[key].bytes_list.value[0]
    return EncodedScene(
        name=name,
        height=int(single(HEIGHT_KEY, "int64_list")),
        width=int(single(WIDTH_KEY, "int64_list")),
        bit_depth=int(single(BIT_DEPTH_KEY, "int64_list")),
        png=png,
        defocus=defocus,
    )


def decode_defocus_map(data: bytes, height: int, width: int, source: str = "<record>") -> np.ndarray:
    """zlib float32 bytes of a defocus map to `[height, width] float32`.

    The size is checked while inflating: a stream holding more than `4 * height * width` bytes
    (e.g. a decompression bomb) is refused after at most one byte more.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"{source}: defocus map size {width}x{height} is empty")
    raw = integrity.inflate_exactly(data, 4 * height * width, source, "defocus map")
    return np.frombuffer(raw, dtype="<f4").reshape(height, width).astype(np.float32)


def decode_scene(encoded: EncodedScene, source: str = "<record>") -> Scene:
    """Decodes PNG views and maps of a parsed record back to a `Scene` (bit-exact integers)."""
    views = {}
    for view, data in encoded.png.items():
        where = f"{source} (scene {encoded.name!r}, view {view})"
        pixels, bit_depth = image_io.decode_png(data, where)
        if bit_depth != encoded.bit_depth or pixels.shape[:2] != (encoded.height, encoded.width):
            raise ValueError(f"{where}: PNG is {pixels.shape[1]}x{pixels.shape[0]} {bit_depth}-bit, record says "
                             f"{encoded.width}x{encoded.height} {encoded.bit_depth}-bit")
        views[view] = pixels
    defocus = {name: decode_defocus_map(data, encoded.height, encoded.width,
                                        f"{source} (scene {encoded.name!r}, defocus map {name})")
               for name, data in encoded.defocus.items()}
    return Scene(encoded.name, views, encoded.bit_depth, defocus)


def scene_to_record(scene: Scene, png_compression: int = 1) -> bytes:
    """Serialized record of a scene: `serialize_scene(encode_scene(scene))`."""
    return serialize_scene(encode_scene(scene, png_compression))


def record_to_scene(serialized: bytes, source: str = "<record>") -> Scene:
    """Scene of a serialized record: `decode_scene(parse_scene_bytes(serialized))`."""
    return decode_scene(parse_scene_bytes(serialized, source), source)


# ----------------------------------------------------------------------------------------------
# Graph-mode reading (tf.data).

FEATURE_SPEC = {
    NAME_KEY: tf.io.FixedLenFeature([], tf.string),
    HEIGHT_KEY: tf.io.FixedLenFeature([], tf.int64),
    WIDTH_KEY: tf.io.FixedLenFeature([], tf.int64),
    BIT_DEPTH_KEY: tf.io.FixedLenFeature([], tf.int64),
    VIEWS_KEY: tf.io.VarLenFeature(tf.string),
    **{image_key(view): tf.io.FixedLenFeature([], tf.string, default_value="") for view in VIEWS},
    **{defocus_key(m): tf.io.FixedLenFeature([], tf.string, default_value="") for m in DEFOCUS_MAPS},
}


def parse_record(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized record (scalar string tensor) to a dict of scalar tensors.

    Keys: `name`, `height`, `width`, `bit_depth` (int64), `views` (1-D string), and the
    `image/<view>` and `defocus/<map>` byte strings (empty when absent).
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    parsed[VIEWS_KEY] = tf.sparse.to_dense(parsed[VIEWS_KEY], default_value="")
    return parsed


def decode_view(png_bytes: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """PNG bytes to `[H, W, 3]` of `dtype` (uint8 or uint16; an 8-bit PNG read as uint16 is x*257)."""
    return tf.io.decode_png(png_bytes, channels=3, dtype=dtype)


def to_float(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 or uint16 pixels to float32 in [0, 1] (`/255` or `/65535`, exact for both)."""
    scale = 255.0 if pixels.dtype == tf.uint8 else 65535.0
    return tf.cast(pixels, tf.float32) / scale


def decode_defocus_tensor(data: tf.Tensor, height: tf.Tensor, width: tf.Tensor,
                          source: tf.Tensor | str = "<record>") -> tf.Tensor:
    """Graph-mode twin of `decode_defocus_map`: `[H, W] float32`, size-checked while inflating.

    `source` (a string tensor, e.g. shard and scene) names the record in errors
    (InvalidArgumentError). Inflation runs in `decode_defocus_map`, bounded by `4 * H * W` bytes:
    `tf.io.decode_compressed` would inflate a decompression bomb whole.
    """
    def decode(data, height, width, source):
        data, source = (value.item() if isinstance(value, np.ndarray) else value for value in (data, source))
        source = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else str(source)
        return decode_defocus_map(data, int(height), int(width), source)

    values = tf.numpy_function(decode, [data, height, width, source], tf.float32, stateful=False)
    return tf.reshape(values, tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32)]))
