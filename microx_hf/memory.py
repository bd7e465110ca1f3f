"""Keeping a long-lived process's memory flat: glibc's malloc arenas, and the memory they keep after a request.

glibc's `malloc` gives threads that allocate at the same time arenas of their own, up to 8 per core (16 on two
cores), and memory freed in an arena stays in it for that arena's next allocations: it goes back to the system only
from the top of the arena, so one live block above a freed region pins that region. A server whose requests pass
through many threads (Gradio hands every event, and every pre- and post-processing step, to a pool of worker
threads; `predict` decodes in a thread of its own) thus ends up holding each arena's largest working set, a
video's decoded frames and the model's activations, many times over. Measured on the Space (issue 22): live heap 269
MB, but 645 MB more held free in 16 arenas, and RSS still climbing after 36 requests.

- `limit_malloc_arenas(n)`: at most `n` arenas for the whole process (glibc's `M_ARENA_MAX`, what the
  `MALLOC_ARENA_MAX` environment variable sets, but applied from inside, before the threads start).
- `release_free_memory()`: `malloc_trim(0)`, which hands the whole free pages inside every arena back to the system
  (not only their tops); a few milliseconds, worth it after each request of a long-lived server.
- `malloc_arenas()`: how many arenas exist (from `malloc_info`), to check the limit.

Other C libraries (musl, macOS) have none of this: the functions do nothing there and say so by returning False or
None.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import tempfile
from functools import cache

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return libc


def limit_malloc_arenas(count: int) -> bool:
    """Let glibc's malloc use at most `count` arenas from now on; True when applied (glibc only).

    Call it before the process starts its threads: arenas made before the call are kept.
    """
    if count < 1:
        raise ValueError(f"count={count}: pass at least 1")
    libc = _glibc()
    if libc is None:
        return False
    applied = bool(libc.mallopt(M_ARENA_MAX, int(count)))
    logger.debug("malloc arenas limited to %d: %s", count, applied)
    return applied


def release_free_memory() -> bool:
    """Return the free pages held inside glibc's arenas to the system (`malloc_trim(0)`); True when any were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def malloc_arenas() -> int | None:
    """The number of malloc arenas glibc has made in this process (the main one included), or None off glibc."""
    libc = _glibc()
    if libc is None:
        return None
    handle, path = tempfile.mkstemp(suffix=".xml")
    os.close(handle)
    try:
        stream = libc.fopen(path.encode(), b"w")
        if not stream:
            return None
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        with open(path) as report:
            return len(re.findall(r"<heap nr=", report.read()))
    finally:
        os.unlink(path)


__all__ = ["limit_malloc_arenas", "malloc_arenas", "release_free_memory"]
