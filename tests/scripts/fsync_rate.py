#!/usr/bin/env python3
"""This disk's single-writer fsync rate: appends 64 bytes and fsyncs, as fast as it goes.

Usage: tests/scripts/fsync_rate.py [DIRECTORY] [SECONDS]   (default: the current directory, 3 s)
The unbuffered storage modes are bound by it: group commit lets many publishers share one fsync.
"""
import os
import sys
import tempfile
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
with tempfile.NamedTemporaryFile(dir=directory) as f:
    fd = f.fileno()
    count = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        os.write(fd, b"x" * 64)
        os.fsync(fd)
        count += 1
    elapsed = time.monotonic() - start
print(f"{count / elapsed:.0f} fsyncs/s ({count} in {elapsed:.1f} s, 64-byte appends, {directory})")
