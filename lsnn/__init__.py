"""lsnn: search, compile and run lightweight spiking neural networks on Loihi-style hardware."""

__version__ = "0.1.0"
