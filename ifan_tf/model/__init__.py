"""The IFAN architecture: IAC layer, deblurring network and reblurring network, their
configuration (``config.ModelConfig``), and the compute precisions of training and inference
(``precision``).

May import: nothing of the project.
"""
