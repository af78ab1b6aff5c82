"""optbench: benchmark Keras optimizers on the 784-128-10 MNIST recipe."""

__version__ = "0.1.0"
