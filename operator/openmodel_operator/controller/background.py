"""The operator's background tasks (the workers, the key watch, the policy-status writer) are started by a Kopf
startup handler and must be gone before Kopf's cleanup closes the API client they use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def stop_tasks(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    """Cancel the tasks and wait until each has ended (its cancellation, or whatever it raised, is swallowed)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
