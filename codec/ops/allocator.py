"""Keep a frame's large CPU buffers in the heap between frames (glibc).

The CPU decoder allocates and frees the same few-MB tensors every frame (the warped feature
volume, the generator's activations).  glibc serves blocks above an adaptive threshold with
``mmap`` and gives them back to the OS when freed, so every frame faults the same pages in
again; whether a block falls above the threshold depends on what the process freed before.
Measured with ``bench speed`` at 256x256 on 2 cores: warp + generate 25 ms a frame with the
threshold fixed, 29-35 ms without.  Fixing it (what ``MALLOC_MMAP_THRESHOLD_`` does at start-up)
keeps freed blocks for reuse; the price is that the process keeps its peak working set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["HEAP_BLOCK_LIMIT", "keep_frame_buffers"]

#: blocks up to this size come from the heap and are reused (glibc's largest allowed threshold)
HEAP_BLOCK_LIMIT = 32 * 1024 * 1024
#: free memory at the top of the heap kept rather than given back to the OS
_TRIM_THRESHOLD = 4 * HEAP_BLOCK_LIMIT
#: ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

_applied = False


def keep_frame_buffers() -> bool:
    """Fix glibc's mmap threshold at :data:`HEAP_BLOCK_LIMIT` for this process (once); returns
    whether it is in force.  A no-op (False) where the C library is not glibc."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _applied
