"""Ordered compiler passes, each Graph -> Graph in its own module."""
