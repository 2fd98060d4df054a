"""Mapping a function over items in worker processes, for CPU-bound data preparation."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")


def process_map(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int, chunksize: int = 1
) -> list[Result]:
    """``[function(item) for item in items]``, in ``workers`` processes when that is more than one.
    Each process runs single-threaded torch (the processes are the parallelism) and starts from a
    fork server, never from a copy of a threaded parent."""
    if workers <= 1:
        return [function(item) for item in items]
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:
        return list(pool.map(function, items, chunksize=chunksize))
