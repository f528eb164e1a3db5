"""The browser page of ``main.py --mode=web``: its URL map (``site``), HTTP server (``server``) and TF
Serving proxy (``proxy``). The page itself is the repository's ``web/`` folder (ES modules; LiteRT.js from npm).

May import: ifan_tf.litert.
"""
