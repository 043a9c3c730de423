"""Helpers of the criu-lazy pytest suite (test/conftest.py wires them up).

paths      where the tool and the test programs are
procs      every process a test starts: spawn, adopt, wait, kill -- by pid
procstate  a snapshot of what /proc says about a task, and diffs of two
tool       running criu-lazy commands and judging their error lines
modes      how each mode (eager, lazy, ...) checkpoints and restores
zdtm       the zdtm programs: the catalogue and one running instance
images     CRIU image framing and a tiny protobuf codec, to damage images
"""
