"""Where things are: the repository, the build, the tool, the test programs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
TOOL = BUILD / "criu-lazy"
ZDTM_BIN = BUILD / "test" / "zdtm"
ZDTM_SRC = ROOT / "test" / "zdtm"


def zdtm_binary(name):
    return ZDTM_BIN / name
