"""Bundled hardware profiles (YAML files in this folder)."""
from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent


def bundled_profiles() -> dict[str, Path]:
    """Map target name -> YAML path for every profile shipped with lsnn."""
    return {p.stem: p for p in sorted(PROFILE_DIR.glob("*.yaml"))}
