"""Where things are: the repository, the build, the tool, the test programs."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# CRIU_LAZY_BUILD=build-asan: the sanitizer build (`scripts/test --sanitize`)
BUILD = ROOT / os.environ.get("CRIU_LAZY_BUILD", "build")
TOOL = BUILD / "criu-lazy"
ZDTM_BIN = BUILD / "test" / "zdtm"
ZDTM_SRC = ROOT / "test" / "zdtm"


def zdtm_binary(name):
    return ZDTM_BIN / name
