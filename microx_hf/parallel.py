"""Many videos at once: a process pool that runs one function on each video and yields each result as it finishes.

    for outcome in map_videos("microx_hf.cli:predict_worker", paths, workers=2,
                              init="microx_hf.cli:init_predict_worker", init_args=(model_name, None, 32)):
        print(outcome.item, outcome.result if outcome.ok else outcome.error)

Why processes and not threads: the landmark and decoding steps hold the GIL often enough that two threads do not
double throughput, and dlib's detector is not safe to share between threads. The pool uses the "spawn" start method
(after OpenCV has started its threads, "fork" deadlocked here) and each worker runs one torch and one OpenCV thread,
because several processes whose thread pools each want every core fight over them (six `microx predict` processes
at once took 84 s against about 8 s each one after another on 2 cores). Each worker runs `init` once (load the model
there) and then `fn` on one item at a time; a failure is reported in its `Outcome` and the other items go on.
This process is one of the workers (a thread of it takes items too): it has already paid for its imports, while a
spawned worker needs seconds before its first item. With ``workers=1`` everything runs here, with no pool.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

FunctionRef = str | Callable[..., Any]


@dataclass
class Outcome:
    """What happened to one item.

    Attributes:
        index: Position of the item in the input.
        item: The item (e.g. a video path).
        result: `fn(item)`, or None when it failed.
        error_type: The exception's class name when it failed (e.g. "NoFaceDetectedError"), else None.
        error: The exception's message when it failed, else None.
        expected: True when the exception was a `MicroXError` (a bad input, reported plainly), False for anything
            else (a bug or an exotic file: `traceback` holds the details).
        traceback: The formatted traceback of an unexpected error, else None.
    """

    index: int
    item: Any
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    expected: bool = True
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None


def resolve(ref: FunctionRef) -> Callable[..., Any]:
    """A callable from itself or from ``"package.module:name"`` (importable in a spawned worker)."""
    if callable(ref):
        return ref
    module, sep, name = str(ref).partition(":")
    if not sep or not module or not name:
        raise ValueError(f"expected a callable or 'package.module:function', got {ref!r}")
    return getattr(importlib.import_module(module), name)


def _run(fn: Callable[..., Any], index: int, item: Any) -> Outcome:
    from .errors import MicroXError

    try:
        return Outcome(index, item, result=fn(item))
    except MicroXError as err:
        return Outcome(index, item, error_type=type(err).__name__, error=str(err))
    except Exception as err:  # reported, not raised: one exotic file must not stop the other videos
        return Outcome(
            index, item, error_type=type(err).__name__, error=str(err), expected=False, traceback=traceback.format_exc()
        )


# --- worker side --------------------------------------------------------------------------------------------------
_WORKER_FN: Callable[..., Any] | None = None
_WORKER_INIT_ERROR: tuple[str, str, bool, str] | None = None


def limit_threads() -> None:
    """One OpenCV thread in this process, and one torch thread where torch is imported (the pool has one process per
    core). torch is not imported here: the ONNX Runtime path never needs it (its sessions run on one thread), and a
    torch imported later reads `OMP_NUM_THREADS`."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"  # for libraries that read it when first loaded
    import cv2

    cv2.setNumThreads(1)
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.set_num_threads(1)
    if torch.get_num_interop_threads() != 1:
        # Settable only before the first inter-op parallel work of the process; a fresh worker has done none.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def _worker_init(fn: FunctionRef, init: FunctionRef | None, init_args: tuple) -> None:
    global _WORKER_FN, _WORKER_INIT_ERROR
    limit_threads()
    try:
        _WORKER_FN = resolve(fn)
        if init is not None:
            resolve(init)(*init_args)
    except Exception as err:
        from .errors import MicroXError

        # Raising here would break the whole pool with a bare BrokenProcessPool; each item reports it instead.
        _WORKER_INIT_ERROR = (type(err).__name__, str(err), isinstance(err, MicroXError), traceback.format_exc())


def _worker_call(index: int, item: Any) -> Outcome:
    if _WORKER_INIT_ERROR is not None:
        name, message, expected, tb = _WORKER_INIT_ERROR
        return Outcome(index, item, error_type=name, error=message, expected=expected, traceback=tb)
    assert _WORKER_FN is not None, "the worker was not initialised"
    return _run(_WORKER_FN, index, item)


# --- caller side --------------------------------------------------------------------------------------------------
def map_videos(
    fn: FunctionRef,
    items: Iterable[Any],
    workers: int = 1,
    init: FunctionRef | None = None,
    init_args: Sequence[Any] = (),
    progress: bool | None = None,
    desc: str = "videos",
) -> Iterator[Outcome]:
    """Run `fn(item)` on every item, in `workers` processes, yielding each `Outcome` as soon as it is done.

    Args:
        fn: The work for one item: a module-level function or ``"package.module:name"`` (workers import it).
        items: The items (video paths); their results come back in the order they finish, each with its `index`.
        workers: Items at once: this process (a thread of it) and ``workers - 1`` spawned processes, each with one
            torch and one OpenCV thread. 1 runs everything here, in order, without a pool.
        init: Run once per worker before its first item (e.g. load the model into a module global), with
            `init_args`; it also runs once here. Its failure is reported for each item of that worker.
        init_args: Positional arguments for `init` (picklable).
        progress: A tqdm bar on stderr; None shows it only on a terminal.
        desc: The bar's label.

    Yields:
        One `Outcome` per item. Nothing is raised for a failing item; a worker process that dies (killed, out of
        memory) fails the items the pool had not finished, with error_type "WorkerDied", and the rest are done here.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise ValueError(f"workers={workers}: pass at least 1")
    items = list(items)
    bar = tqdm(
        total=len(items),
        desc=desc,
        unit="video",
        file=sys.stderr,
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    )
    try:
        if workers == 1 or len(items) <= 1:
            yield from _map_here(fn, items, init, tuple(init_args), bar)
        else:
            yield from _map_pool(fn, items, min(workers, len(items)), init, tuple(init_args), bar)
    finally:
        bar.close()


def _init_here(fn, init, init_args):
    """`fn` resolved and `init` run in this process, or the Outcome fields of the failure."""
    from .errors import MicroXError

    try:
        work = resolve(fn)
        if init is not None:
            resolve(init)(*init_args)
        return work, None
    except Exception as err:
        return None, {
            "error_type": type(err).__name__,
            "error": str(err),
            "expected": isinstance(err, MicroXError),
            "traceback": traceback.format_exc(),
        }


def _map_here(fn, items, init, init_args, bar) -> Iterator[Outcome]:
    work, failure = _init_here(fn, init, init_args)
    for index, item in enumerate(items):
        outcome = Outcome(index, item, **failure) if failure else _run(work, index, item)
        bar.update()
        yield outcome


def _map_pool(fn, items, workers, init, init_args, bar) -> Iterator[Outcome]:
    """`workers - 1` spawned processes plus a thread of this process, each taking the next item when it is free.

    This process has already imported everything and often loaded the model, and a spawned worker needs seconds to
    start (imports, model, landmark model): working here too gives the first result as soon as one process would,
    and saves a process. Items are handed out one at a time, so a slow video does not hold up a queue behind it.
    """
    import multiprocessing

    limit_threads()  # this process is one of the workers now
    logger.info("starting %d worker processes beside this one", workers - 1)
    executor = ProcessPoolExecutor(
        workers - 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(fn, init, init_args),
    )
    here: dict[str, Any] = {}

    def work_here(index: int) -> Outcome:
        if not here:  # the first item here: resolve `fn` and run `init` in this process
            here["work"], here["failure"] = _init_here(fn, init, init_args)
        failure = here["failure"]
        return Outcome(index, items[index], **failure) if failure else _run(here["work"], index, items[index])

    order = iter(range(len(items)))
    pending: dict[Future, tuple[int, bool]] = {}  # future -> (item index, whether it runs in a worker process)
    pool_ok = True

    def submit(in_pool: bool) -> None:
        index = next(order, None)
        if index is None:
            return
        future = executor.submit(_worker_call, index, items[index]) if in_pool else _in_daemon(work_here, index)
        pending[future] = (index, in_pool)

    try:
        for _ in range(workers - 1):
            submit(in_pool=True)
        submit(in_pool=False)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index, in_pool = pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool as err:
                    # The pool is gone (a worker was killed, or ran out of memory): the items it had not finished
                    # fail, and the rest go on in this process.
                    pool_ok = False
                    outcome = Outcome(
                        index,
                        items[index],
                        error_type="WorkerDied",
                        expected=False,
                        error=f"the worker process died ({err}); it may have run out of memory",
                    )
                if in_pool and pool_ok:
                    submit(in_pool=True)
                elif all(in_pool for _, in_pool in pending.values()):  # one item at a time here
                    submit(in_pool=False)
                bar.update()
                yield outcome
    finally:
        # Also on Ctrl-C or when the caller stops iterating: hand out nothing more, and stop the workers' current
        # items rather than wait for them (a long video takes minutes; at exit the pool would be joined).
        if pending:
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)


def _in_daemon(fn: Callable[..., Any], *args: Any) -> Future:
    """`fn(*args)` in a daemon thread (at exit nothing waits for it), as a `Future`."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as error:  # handed to whoever waits on the future
                future.set_exception(error)

    threading.Thread(target=run, name="microx-map-here", daemon=True).start()
    return future


def in_thread(items: Iterable[Any], queue_size: int = 32) -> Iterator[Any]:
    """Runs an iterator in a daemon thread, yielding its items here; at most `queue_size` wait between the two
    (memory stays bounded), an exception in the thread is raised here, and the thread stops when the caller stops
    iterating."""
    buffer: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # handed to the consumer, which raises it
            buffer.put(error)

    thread = threading.Thread(target=produce, name="microx-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
