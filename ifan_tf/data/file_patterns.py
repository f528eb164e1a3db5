"""The one parser of comma-separated file globs (``--data=a/*.tfrecord,b/*.tfrecord``, ``config.data.train``)."""


def split_file_patterns(patterns):
    """Glob patterns from a comma-separated string, or from a list of such strings.

    ``"a/*.tfrecord, b/*.tfrecord"`` -> ``["a/*.tfrecord", "b/*.tfrecord"]``; blanks around each
    pattern and empty items are dropped; None or ``""`` -> ``[]``. Order is kept.
    """
    if patterns is None:
        return []
    items = [patterns] if isinstance(patterns, str) else [str(item) for item in patterns]
    return [pattern.strip() for item in items for pattern in item.split(",") if pattern.strip()]
