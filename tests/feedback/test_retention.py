"""Retention in the feedback service: resolved or closed cases unchanged for CRP_PERSONAL_DATA_RETENTION_DAYS lose
their description, contact, response, referral recipient and notes (housekeeping); open or recent cases keep
them; the counts' facts stay; audited by `retention`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from services.feedback.app import service
from services.feedback.config import FeedbackSettings
from services.feedback.models import Feedback, FeedbackHistory
from services.feedback.service import ERASED
from shared.audit import AuditEntry
from shared.db import utcnow
from shared.housekeeping import Housekeeping
from shared.pii import seal, unseal
from tests.conftest import Env, eventually, running


async def test_retention_erases_the_text_of_old_closed_cases(env: Env) -> None:
    settings = env.settings(FeedbackSettings, personal_data_retention_days=30, housekeeping_interval_seconds=3600)
    app = service.create_app(settings)
    async with running(app):
        old, now = utcnow() - timedelta(days=40), utcnow()

        def case(reference: str, status: str, updated_at: object) -> Feedback:
            return Feedback(reference=reference, channel="hotline", category="major_dissatisfaction", sensitive=False,
                            description_sealed=seal(settings, f"Complaint {reference} about Abu Karim"),
                            anonymous=False, contact_sealed=seal(settings, "+964 770 123 4567"), pin_hash="x",
                            pin_key_chain="k1", status=status, received_at=old, acknowledge_due_at=old,
                            resolve_due_at=old, response_sealed=seal(settings, "We fixed it"),
                            governorate_pcode="IQG15", updated_at=updated_at)

        async with app.state.sessionmaker() as session, session.begin():
            rows = [case("R-OLD", "closed", old), case("R-OPEN", "in_progress", old), case("R-NEW", "resolved", now)]
            session.add_all(rows)
            await session.flush()
            session.add(FeedbackHistory(feedback_id=rows[0].id, status="closed", note_sealed=seal(settings, "note"),
                                        actor="cfm", at=old))
        ids = [r.id for r in rows]
        await Housekeeping(settings, app.state.sessionmaker, service.housekeeping)._once()

        async def erased() -> bool:  # by this pass, or by the app's own housekeeping if it held the row (skip locked)
            async with app.state.sessionmaker() as session:
                row = await session.get(Feedback, ids[0], populate_existing=True)
                return row is not None and row.contact_sealed is None

        await eventually(erased)
        async with app.state.sessionmaker() as session:
            got = {f.id: f for f in (await session.execute(select(Feedback))).scalars().all()}
            notes = (await session.execute(select(FeedbackHistory.note_sealed))).scalars().all()
            actors = (await session.execute(select(AuditEntry.actor).where(
                AuditEntry.action == "erased_retention"))).scalars().all()
        gone, open_, recent = (got[i] for i in ids)
        assert unseal(settings, gone.description_sealed) == ERASED
        assert (gone.contact_sealed, gone.response_sealed, gone.status, gone.category) == \
            (None, None, "closed", "major_dissatisfaction")
        assert notes == [None] and actors == ["retention"]
        for kept in (open_, recent):
            assert "Abu Karim" in unseal(settings, kept.description_sealed) and kept.contact_sealed is not None
        # a second pass finds nothing more to do
        await Housekeeping(settings, app.state.sessionmaker, service.housekeeping)._once()
        async with app.state.sessionmaker() as session:
            assert len((await session.execute(select(AuditEntry).where(
                AuditEntry.action == "erased_retention"))).scalars().all()) == 1
