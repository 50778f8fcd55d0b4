"""Request and response bodies of bulk imports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db import UtcDatetime
from shared.schemas import Strict

ImportStatus = Literal["queued", "running", "completed"]
RowStatus = Literal["pending", "created", "duplicate", "invalid"]


class ImportPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: ImportStatus
    format: Literal["csv", "json"]
    content_hash: str = Field(description="SHA-256 of the uploaded bytes: the same file again is this job.")
    total_rows: int
    processed_rows: int = Field(description="Rows with an outcome so far (progress: processed / total).")
    created_rows: int
    duplicate_rows: int = Field(description="Probable duplicates awaiting review (confirmed ones count as "
                                            "created).")
    invalid_rows: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class ImportCandidate(BaseModel):
    id: str = Field(description="The registered beneficiary this row may be.")
    score: float
    reasons: list[str]
    row_number: int | None = Field(default=None, description="Set when the candidate was created from an "
                                                             "earlier row of the same file.")


class ImportRowError(BaseModel):
    loc: list[str | int]
    msg: str


class ImportRowPublic(BaseModel):
    row_number: int
    status: RowStatus
    beneficiary_id: str | None = Field(description="The registration this row became (created rows).")
    confirmed: bool = Field(description="Registered after a reviewer confirmed it is not a duplicate.")
    candidates: list[ImportCandidate] = Field(description="Probable duplicates: who, score and why.")
    errors: list[ImportRowError] = Field(description="Why the row is invalid (field and message, never the "
                                                     "value).")


class ImportRowPage(BaseModel):
    items: list[ImportRowPublic]
    next_cursor: str | None = None


class ImportConfirmation(Strict):
    rows: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=500)] = Field(
        description="Row numbers of probable duplicates a reviewer confirmed are different people: each is "
                    "registered (as with `confirm_not_duplicate`).")


def row_public(row: Any) -> ImportRowPublic:
    return ImportRowPublic(row_number=row.row_number, status=row.status, beneficiary_id=row.beneficiary_id,
                           confirmed=row.confirmed, candidates=row.candidates or [], errors=row.errors or [])
