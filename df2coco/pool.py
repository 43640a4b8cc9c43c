"""Run chunks of work in worker processes and get the results back in order.

A small replacement for ``multiprocessing.Pool`` with the properties the
converter needs:

* results come back in the order the chunks were given;
* at most ``in_flight`` chunks per worker are pending, so memory stays bounded;
* stopping is clean whatever happens (an error, Ctrl-C, SIGTERM): every worker
  is ended with SIGTERM and waited for. ``Pool`` keeps a thread that restarts
  workers, and when the pool is terminated that thread can start a new worker
  just as the pool's semaphores are deleted: the new worker then prints a
  ``FileNotFoundError`` traceback. Here there is no such thread and no semaphore.

Worker ``k`` of ``W`` gets chunks ``k, k + W, k + 2W, ...`` over its own pipe
and answers them in the same order, so the parent reads chunk ``i``'s result
from worker ``i % W``. The parent sends a worker its next chunk only after
reading one of its results, so neither side can block the other on a full pipe.
Workers are forked from a forkserver (safe even if the parent has threads) and
never see SIGINT (it is blocked in them): a Ctrl-C in a terminal reaches the
whole process group, and the parent alone decides to stop them.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Callable, Iterable, Iterator


class WorkerError(RuntimeError):
    """A worker process raised an exception or died."""


def ordered_results(function: Callable, chunks: Iterable, args: tuple, workers: int,
                    in_flight: int = 3, preload: tuple[str, ...] = ()) -> Iterator:
    """``function(chunk, *args)`` for each chunk, computed by ``workers`` processes, yielded in order.

    Args:
      function: a module-level function (workers import it by name).
      chunks: the units of work (picklable).
      args: extra arguments passed to every call (picklable).
      workers: number of processes (>= 1).
      in_flight: most chunks sent ahead to each worker.
      preload: modules the forkserver imports once, before forking the workers.
    Raises:
      WorkerError: a worker raised (its exception's last line is in the message) or died.
    """
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    connections, processes = [], []
    try:
        with _sigint_blocked():  # the forkserver and its children inherit the blocked SIGINT
            for _ in range(workers):
                parent_end, child_end = context.Pipe(duplex=True)
                process = context.Process(target=_serve, args=(child_end, function, args), daemon=True)
                process.start()
                child_end.close()
                connections.append(parent_end)
                processes.append(process)
        chunks = iter(chunks)
        pending = 0
        for index, chunk in enumerate(itertools.islice(chunks, workers * in_flight)):
            _send(connections[index % workers], chunk)
            pending += 1
        index = 0
        while pending:
            result = _receive(connections[index % workers], processes[index % workers])
            pending -= 1
            following = next(chunks, None)
            if following is not None:
                _send(connections[index % workers], following)  # same worker: (index + W * in_flight) % W
                pending += 1
            index += 1
            yield result
        for connection in connections:
            _send(connection, None)  # no more work
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        for connection in connections:
            connection.close()


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT while worker processes start, so that they never see one.

    A process inherits its parent's signal mask, and the forkserver, started
    with the first worker, passes its own on to every worker it forks: with
    SIGINT blocked there, a Ctrl-C can never reach a worker, not even in the
    instant before it could ignore it. This process gets a SIGINT that arrived
    meanwhile as soon as the block is lifted.
    """
    import signal

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _send(connection, message) -> None:
    """Send to a worker; if it has already stopped (after an error), its answer says why when read."""
    try:
        connection.send(message)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _receive(connection, process):
    try:
        status, value = connection.recv()
    except (EOFError, ConnectionResetError):
        process.join(timeout=1)
        raise WorkerError(f"a worker process died (exit code {process.exitcode})") from None
    if status == "error":
        raise WorkerError(f"a worker process failed: {value}")
    return value


def _serve(connection, function: Callable, args: tuple) -> None:
    """Worker loop: answer each chunk with ``("ok", result)`` or ``("error", last line)`` until None."""
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            chunk = connection.recv()
        except EOFError:  # the parent stopped the run (or died): nothing to report to
            return
        if chunk is None:
            return
        try:
            connection.send(("ok", function(chunk, *args)))
        except Exception as exc:  # reported to the parent, which stops the run
            last = traceback.format_exception_only(exc)[-1].strip()
            connection.send(("error", last))
            return
