"""Where the repository is, for the commands that default to its folders (lectures/, build/, ...)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
