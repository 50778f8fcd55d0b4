"""The NATS JetStream connection: connect (and keep reconnecting), and the CRP stream."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from shared.settings import CommonSettings
from shared.worker import retry_forever

log = logging.getLogger("crp.bus")


class Bus:
    """One NATS connection per process. Connects in the background and never gives up."""

    def __init__(self, settings: CommonSettings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"crp-{settings.service_name}"
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.ready = asyncio.Event()
        self.generation = 0  # bumped on every (re)connect, so pull subscriptions can be renewed
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name=f"{self.name}-connect")

    async def _on_reconnect(self) -> None:
        self.generation += 1
        log.info("reconnected to NATS", extra={"generation": self.generation})

    async def _on_disconnect(self) -> None:
        log.warning("disconnected from NATS")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error: %s", exc)

    async def _connect_forever(self) -> None:
        # NATS down at start-up: keep trying; meanwhile the outbox holds the events.
        await retry_forever(f"connecting to NATS at {self.settings.nats_url}")(self._connect)

    async def _connect(self) -> None:
        nc = await nats.connect(
            self.settings.nats_url, name=self.name, connect_timeout=2, max_reconnect_attempts=-1,
            reconnect_time_wait=0.5, allow_reconnect=True, reconnected_cb=self._on_reconnect,
            disconnected_cb=self._on_disconnect, error_cb=self._on_error,
        )
        try:
            js = nc.jetstream(timeout=5)
            await ensure_stream(js, self.settings)
        except BaseException:
            await nc.close()
            raise
        self.nc, self.js = nc, js
        self.generation += 1
        self.ready.set()

    async def wait_ready(self, timeout: float | None = None) -> JetStreamContext:
        await asyncio.wait_for(self.ready.wait(), timeout)
        assert self.js is not None
        return self.js

    async def close(self, timeout: float = 5.0) -> None:
        """Drain and close within ``timeout``; a broken connection is closed without draining."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=timeout)
        nc = self.nc
        if nc is None or nc.is_closed:
            return
        for step in (nc.drain, nc.close):
            task = asyncio.create_task(step())
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done and not task.exception() and nc.is_closed:
                return
            if not done:
                task.cancel()
                log.error("NATS connection %s did not finish %s within %.0fs", self.name, step.__name__, timeout)


def stream_config(settings: CommonSettings) -> StreamConfig:
    # Limits retention and no max age: the stream is the history that projections are rebuilt from.
    return StreamConfig(
        name=settings.nats_stream,
        subjects=[f"{settings.subject_prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.nats_stream_replicas,
    )


async def ensure_stream(js: JetStreamContext, settings: CommonSettings) -> None:
    config = stream_config(settings)
    try:
        await js.add_stream(config)
    except BadRequestError:  # exists with another configuration
        await js.update_stream(config)
