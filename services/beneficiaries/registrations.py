"""Group commit of registrations (``shared.group_commit``): the POSTs that arrive while one is being written are
written together by ``service.register_many``, in one transaction, each with its own caller, request id, trace and
Idempotency-Key, and each answered as it would be alone (the same rules, 201/409/422 bodies, audit and event).

A batch whose transaction fails (say, a national ID registered concurrently by another process, or one
Idempotency-Key used twice in it) is rolled back and each of its requests is then written alone, the usual way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Histogram

from services.beneficiaries import service as svc
from services.beneficiaries.schemas import BeneficiaryCreate
from shared.db import run_after_commit_hooks
from shared.errors import ProblemError
from shared.group_commit import GroupCommit, WriteEachAlone
from shared.idempotency import Idempotency
from shared.settings import CommonSettings

BATCH_SIZE = Histogram("crp_registration_batch_size", "Registrations written per transaction (group commit)",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))


@dataclass(frozen=True)
class Registration:
    """One POST /beneficiaries: what to register, for whom, and how its 201 is answered and remembered."""

    data: BeneficiaryCreate
    origin: svc.Origin
    idem: Idempotency
    headers: Callable[[Any], dict[str, str]]  # the 201's ETag and Location, from the record made


class Registrations(GroupCommit[Registration, JSONResponse]):
    """The service's registrations (``app.state.registrations``): written in batches, or alone when the batch max is
    1 or a batch failed."""

    def __init__(self, app: FastAPI, settings: CommonSettings) -> None:
        max_size = int(getattr(settings, "registration_batch_max", 1))
        super().__init__(f"registrations-{settings.service_name}", self.write_batch, self.write_alone,
                         max_size=max_size, sizes=BATCH_SIZE)
        self.settings = settings
        self.sessionmaker = app.state.sessionmaker
        self.outbox = app.state.outbox
        app.state.registrations = self

    async def register(self, item: Registration) -> JSONResponse:
        """The request's response, once its registration is committed (or the problem it raises)."""
        if self.max_size > 1 and (response := await self.submit(item)) is not None:
            return response
        return await self.write_alone(item)

    async def write_alone(self, item: Registration) -> JSONResponse:
        """One registration in its own transaction: ``service.register`` under ``Idempotency.once``, as any route."""
        async with self.sessionmaker() as session:
            response = await item.idem.in_session(session).once(
                svc.register(session=session, outbox=self.outbox, settings=self.settings,
                             principal=item.origin.principal, data=item.data),
                svc.to_public, status_code=201, headers=item.headers)
            await session.commit()
        run_after_commit_hooks(session)  # wake the outbox relay
        return response

    async def write_batch(self, items: list[Registration]) -> list[JSONResponse | ProblemError]:
        """Register ``items`` in one transaction and commit it: each one's response, or the problem it raises."""
        keys = [(item.idem.principal, item.idem.key) for item in items if item.idem.key is not None]
        if len(set(keys)) < len(keys):  # the second must replay the first's response: one after the other
            raise WriteEachAlone("an Idempotency-Key twice in one batch")
        outcomes: list[Any] = [None] * len(items)
        async with self.sessionmaker() as session:
            todo = []
            for i, item in enumerate(items):  # a key used before: its stored response, as ``Idempotency.once``
                try:
                    outcomes[i] = await item.idem.in_session(session).replay()
                except ProblemError as problem:  # the key was used with another body
                    outcomes[i] = problem
                if outcomes[i] is None:
                    todo.append(i)
            made = await svc.register_many(session=session, outbox=self.outbox, settings=self.settings,
                                           items=[items[i].data for i in todo],
                                           origins=[items[i].origin for i in todo])
            for i, result in zip(todo, made, strict=True):
                if isinstance(result, ProblemError):
                    outcomes[i] = result
                else:  # stored with the registration, under its Idempotency-Key (if any)
                    outcomes[i] = await items[i].idem.in_session(session).respond(
                        svc.to_public(result), status_code=201, headers=items[i].headers(result))
            await session.commit()
        run_after_commit_hooks(session)  # wake the outbox relay
        return outcomes
