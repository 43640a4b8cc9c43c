"""df2coco.pool.ordered_results: order, bounded work in flight, errors, and the worker-count policy."""
from __future__ import annotations

import pytest

from df2coco import convert
from df2coco.pool import WorkerError, ordered_results


def square_all(chunk: list[int], offset: int) -> list[int]:
    return [x * x + offset for x in chunk]


def fail_on_13(chunk: list[int]) -> list[int]:
    if 13 in chunk:
        raise ValueError("thirteen is unlucky")
    return chunk


def test_results_come_back_in_order_whatever_the_worker_count():
    chunks = [list(range(i, i + 3)) for i in range(0, 60, 3)]
    for workers in (1, 3):
        results = list(ordered_results(square_all, chunks, (7,), workers, in_flight=2))
        assert results == [[x * x + 7 for x in chunk] for chunk in chunks]


def test_fewer_chunks_than_workers():
    assert list(ordered_results(square_all, [[2]], (0,), 3)) == [[4]]  # two workers get only "stop"


def test_a_failing_worker_raises_with_the_exception_line():
    chunks = [[i] for i in range(20)]
    with pytest.raises(WorkerError, match="ValueError: thirteen is unlucky"):
        list(ordered_results(fail_on_13, chunks, (), 2))


def test_workers_only_with_enough_images():
    per_worker = convert.MIN_IMAGES_PER_WORKER
    assert convert._worker_count(2, 10) == 1  # a small split runs in this process
    assert convert._worker_count(2, 2 * per_worker - 1) == 1
    assert convert._worker_count(2, 2 * per_worker) == 2
    assert convert._worker_count(1, 100 * per_worker) == 1
    assert convert._worker_count(8, 3 * per_worker) == 3
