"""`microx_hf.memory`: the malloc arena limit holds however many threads allocate, and trimming works.

Each check runs in a fresh interpreter: arenas, once made, last as long as the process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from microx_hf.memory import malloc_arenas, release_free_memory

pytestmark = pytest.mark.skipif(malloc_arenas() is None, reason="glibc's malloc only")

# Eight threads alive at once, each allocating (a thread's first allocation gets it an arena of its own, up to the
# limit), then the number of arenas the process has.
THREADS = """
import threading
from microx_hf.memory import limit_malloc_arenas, malloc_arenas
{limit}
barrier = threading.Barrier(9)
def work():
    blocks = [bytearray(200_000) for _ in range(20)]
    barrier.wait()
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
barrier.wait()
print(malloc_arenas())
barrier.wait()
for thread in threads:
    thread.join()
"""


def _arenas_with(limit: str) -> int:
    code = textwrap.dedent(THREADS.format(limit=limit))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout.strip())


def test_threads_get_arenas_of_their_own_without_a_limit():
    # The control: without the limit, the eight threads make arenas beyond the main one.
    assert _arenas_with("") > 2


def test_the_limit_holds_for_threads_started_after_it():
    assert _arenas_with("assert limit_malloc_arenas(2)") <= 2


def test_limit_refuses_zero():
    from microx_hf.memory import limit_malloc_arenas

    with pytest.raises(ValueError):
        limit_malloc_arenas(0)


def test_release_free_memory_runs():
    blocks = [bytearray(1 << 20) for _ in range(32)]
    del blocks
    assert isinstance(release_free_memory(), bool)
    assert malloc_arenas() >= 1
