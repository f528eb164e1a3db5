"""Synthetic dual-pixel defocus data from sharp photographs (the library behind
``python -m data_prep.synthesize`` and ``main.py --mode=demo``).

- ``sharp_photos``: the sharp source photographs (scikit-image's bundled ones or a folder);
- ``scene_layout``: random piecewise-smooth depth layouts and their circles of confusion;
- ``dual_pixel_kernels``, ``defocus_render``: the dual-pixel blur model and the layered renderer;
- ``synthetic_dataset``: whole data sets as sharded TFRecords (``synthesize_dataset``);
- ``demo_data``: the demo's data set from a ``config.demo`` section (also the ablation study's).

May import: ifan_tf.io, ifan_tf.data.
"""
