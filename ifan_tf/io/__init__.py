"""Files and safe writing: the project's one image codec (``image_io``), image headers without
decoding (``image_headers``), bounded reading of files a user points at (``input_files``) and
atomic writes of files and directories (``atomic_write``).

May import: nothing of the project.
"""
