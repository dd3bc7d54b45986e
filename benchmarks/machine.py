"""The machine a benchmark ran on (lsnn.machine), importable from benchmark scripts run as files."""
from lsnn.machine import cpu_description, cpu_model

__all__ = ["cpu_description", "cpu_model"]
