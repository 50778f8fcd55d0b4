"""Request and response bodies of KoboToolbox sources."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from shared.db import UtcDatetime
from shared.schemas import Strict

TargetField = Literal["first_name", "father_name", "grandfather_name", "family_name", "sex", "date_of_birth",
                      "displacement_status", "community_id", "household_id", "phone", "national_id",
                      "consent.given", "consent.obtained_on", "disability.seeing", "disability.hearing",
                      "disability.walking", "disability.cognition", "disability.self_care",
                      "disability.communication"]
XlsPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_./-]{0,199}$")]


class KoboSourceCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    server_url: AnyHttpUrl = Field(examples=["https://kf.kobotoolbox.org"])
    token: Annotated[str, StringConstraints(min_length=8, max_length=200)] = Field(
        description="The Kobo API token (sent as `Authorization: Token ...`): stored encrypted, never shown again.")
    asset_uid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{4,64}$")] = Field(examples=["aBcD1234EfGh"])
    mapping: dict[XlsPath, TargetField] = Field(min_length=1, examples=[{
        "group_hh/first_name": "first_name", "group_hh/father_name": "father_name", "group_hh/sex": "sex",
        "group_hh/dob": "date_of_birth", "status": "displacement_status", "consent": "consent.given",
        "today": "consent.obtained_on"}], description="XLSForm field path -> registration field.")
    defaults: dict[TargetField, Any] = Field(default_factory=dict, examples=[{"community_id": "..."}],
                                             description="Fields every submission gets unless the form maps them.")
    pull_interval_minutes: Annotated[int, Field(ge=1, le=10080)] = 60


class KoboSourcePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    server_url: str
    asset_uid: str
    mapping: dict[str, str]
    defaults: dict[str, Any]
    pull_interval_minutes: int
    last_submission_time: str | None = Field(description="The newest submission imported: the next pull asks for "
                                                         "later ones.")
    pull_requested_at: UtcDatetime | None
    last_pulled_at: UtcDatetime | None
    created_at: UtcDatetime


class KoboPullPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: Literal["succeeded", "failed"]
    submissions: int = Field(description="Submissions Kobo sent.")
    imported: int = Field(description="New submissions (by `_uuid`) handed to the import.")
    already_known: int
    import_id: str | None = Field(description="The import job of the new submissions: its report says what "
                                              "became of each.")
    error: str | None
    started_at: UtcDatetime
    finished_at: UtcDatetime
