"""shared.concurrency on its own: a Versioned row's UPDATE is conditioned on the version read; touch() forces it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Field, Session

from shared.concurrency import Versioned, touch


class Probe(Versioned, table=True):
    __tablename__ = "concurrency_probe"

    id: str = Field(primary_key=True, max_length=36)
    status: str = Field(max_length=16)


def test_the_loser_of_a_race_gets_stale_data_and_touch_bumps(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    Probe.__table__.create(engine)  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.add(Probe(id="p", status="submitted"))
        session.commit()
    with Session(engine) as first, Session(engine) as second:
        a, b = first.get(Probe, "p"), second.get(Probe, "p")
        assert a is not None and b is not None and a.version == b.version == 1
        a.status = "approved"
        first.commit()
        assert a.version == 2  # bumped by the ORM, not by hand
        b.status = "rejected"
        with pytest.raises(StaleDataError):
            second.flush()
    with Session(engine) as session:
        row = session.get(Probe, "p")
        assert row is not None and row.status == "approved"
        touch(row)  # nothing else changes, yet the UPDATE (and its check) happens
        session.commit()
        assert row.version == 3
