"""The per-service in-flight bound hands freed slots to the longest waiter, and loses none."""

from __future__ import annotations

import asyncio

import pytest

from gateway.proxy import FairLimit


async def test_freed_slots_go_to_the_longest_waiter_and_newcomers_queue_behind() -> None:
    limit = FairLimit(1)
    await limit.acquire(1)
    order: list[str] = []

    async def user(name: str) -> None:
        await limit.acquire(1)
        order.append(name)
        await asyncio.sleep(0)
        limit.release()

    first = asyncio.create_task(user("first"))
    second = asyncio.create_task(user("second"))
    await asyncio.sleep(0)
    limit.release()
    late = asyncio.create_task(user("late"))  # arrives after the release, before the waiters ran
    await asyncio.gather(first, second, late)
    assert order == ["first", "second", "late"]
    assert limit.free == 1 and not limit.waiters


async def test_a_waiter_that_gives_up_keeps_no_slot() -> None:
    limit = FairLimit(1)
    await limit.acquire(1)
    with pytest.raises(TimeoutError):
        await limit.acquire(0.01)
    limit.release()
    assert limit.free == 1
    await asyncio.wait_for(limit.acquire(1), 1)  # the slot is still there
    assert limit.free == 0
