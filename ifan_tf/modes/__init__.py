"""One module per ``main.py --mode``; each exposes ``run(FLAGS)``."""
