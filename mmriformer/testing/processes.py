# Copyright (c) OpenMMLab. All rights reserved.
"""Processes that race each other, for tests of what must be safe under
concurrency."""
import multiprocessing
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Callable, Iterator, List


def _after_barrier(barrier, target: Callable, args: tuple) -> None:
    barrier.wait()
    target(*args)


@contextmanager
def started_together(target: Callable,
                     args: tuple = (),
                     num: int = 3) -> Iterator[List[BaseProcess]]:
    """Run ``target(*args)`` in ``num`` processes released at once.

    The processes are forked, so they need no re-import of torch and mmdet
    and they see the caller's monkeypatches. Leaving the block waits for
    them (killing any still running after two minutes) and asserts that
    each exited normally.

    Args:
        target (Callable): What each process calls.
        args (tuple): Its arguments. Defaults to ().
        num (int): Number of processes. Defaults to 3.

    Yields:
        list[BaseProcess]: The running processes.
    """
    context = multiprocessing.get_context('fork')
    barrier = context.Barrier(num)
    workers = [
        context.Process(target=_after_barrier, args=(barrier, target, args))
        for _ in range(num)
    ]
    for worker in workers:
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.join(timeout=120)
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [worker.exitcode for worker in workers] == [0] * num
