"""Training configurations of ifan_tf (``ml_collections``), importable as modules.

``main.py --config=configs/ifan.py[:VARIANT]`` loads a file by path (``config_flags``); Python
code imports the same module: ``from configs import ifan; config = ifan.get_config("demo")``.
"""
