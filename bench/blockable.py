"""Run a command unless a block file exists: `python blockable.py BLOCK_FILE SCRIPT ARGS...`.

The health benchmark uses it to keep a killed stdio backend from starting again
until it removes the block file. With no block file it execs the script, so the
backend's pid is this process's pid.
"""

import os
import sys

if __name__ == "__main__":
    block, *command = sys.argv[1:]
    if os.path.exists(block):
        sys.exit(3)
    os.execv(sys.executable, [sys.executable, *command])
