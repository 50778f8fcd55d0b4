"""Request and response bodies of the beneficiaries service."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.db import UtcDatetime
from shared.schemas import PastDate, Strict

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Sex = Literal["female", "male"]
DisplacementStatus = Literal["idp", "returnee", "host_community"]
WgAnswer = Annotated[int, Field(ge=1, le=4)]


class AreaPublic(BaseModel):
    pcode: str
    name_en: str


class DistrictPublic(AreaPublic):
    parent_pcode: str


class CommunityCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Al-Mosul Old City", "district_pcode": "IQG15Q05"}]})

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    district_pcode: str = Field(examples=["IQG15Q05"])
    name_ar: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None


class CommunityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    name_ar: str | None
    district_pcode: str
    governorate_pcode: str
    latitude: float | None
    longitude: float | None
    created_at: UtcDatetime


class HouseholdCreate(Strict):
    community_id: str
    size: Annotated[int, Field(ge=1, le=100)] | None = None


class HouseholdPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    community_id: str
    size: int | None
    district_pcode: str
    governorate_pcode: str
    created_at: UtcDatetime


class Disability(Strict):
    """Washington Group short set: 1 no difficulty, 2 some, 3 a lot, 4 cannot do at all."""

    seeing: WgAnswer
    hearing: WgAnswer
    walking: WgAnswer
    cognition: WgAnswer
    self_care: WgAnswer
    communication: WgAnswer

    @property
    def has_disability(self) -> bool:
        """The Washington Group cut-off: at least one domain with 'a lot of difficulty' or worse."""
        return max(self.model_dump().values()) >= 3


class Consent(Strict):
    given: bool
    obtained_on: PastDate = Field(description="When the person gave informed consent (not in the future).")

    @field_validator("given")
    @classmethod
    def _must_be_given(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("informed consent is required to register a person")
        return value


def _check_birth_date(value: date) -> date:
    if value > date.today():
        raise ValueError("date_of_birth is in the future")
    if value.year < 1900:
        raise ValueError("date_of_birth is before 1900")
    return value


Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{6,20}$")]
NationalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=40)]


class BeneficiaryCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "first_name": "أحمد", "father_name": "علي", "grandfather_name": "حسن", "sex": "male",
        "date_of_birth": "1988-04-02", "displacement_status": "returnee",
        "community_id": "5b0e4a57-2b9e-4c1e-8f0a-2d3c4b5a6978", "phone": "+964 770 123 4567",
        "consent": {"given": True, "obtained_on": "2026-11-01"}}]})

    first_name: Name
    father_name: Name
    grandfather_name: Name | None = None
    family_name: Name | None = None
    sex: Sex
    date_of_birth: date
    displacement_status: DisplacementStatus
    community_id: str
    household_id: str | None = None
    phone: Phone | None = None
    national_id: NationalId | None = None
    disability: Disability | None = None
    consent: Consent
    confirm_not_duplicate: bool = False

    _dob = field_validator("date_of_birth")(_check_birth_date)


class BeneficiaryUpdate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"displacement_status": "returnee", "phone": "+964 770 123 4567"}]})

    first_name: Name | None = None
    father_name: Name | None = None
    grandfather_name: Name | None = None
    family_name: Name | None = None
    sex: Sex | None = None
    date_of_birth: date | None = None
    displacement_status: DisplacementStatus | None = None
    community_id: str | None = None
    household_id: str | None = None
    phone: Phone | None = None
    national_id: NationalId | None = None
    disability: Disability | None = None

    @field_validator("date_of_birth")
    @classmethod
    def _dob(cls, value: date | None) -> date | None:
        return None if value is None else _check_birth_date(value)

    @model_validator(mode="after")
    def _not_empty(self) -> BeneficiaryUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        for required in ("first_name", "father_name", "sex", "date_of_birth", "displacement_status",
                         "community_id"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be removed")
        return self


class ConsentPublic(BaseModel):
    given: bool = Field(description="False once the person withdrew consent: no new assistance is recorded "
                                    "for them (other services answer 409).")
    obtained_on: date
    withdrawn_on: date | None = None
    withdrawal_reason: str | None = None


class ConsentWithdrawal(Strict):
    withdrawn_on: PastDate = Field(description="When the person withdrew consent (not in the future, not "
                                               "before it was obtained).")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None = Field(
        default=None, description="Kept on the record only: never in events or the audit log.")


class ErasureRequest(Strict):
    requested_on: PastDate = Field(description="When the person asked to be forgotten.")


class BeneficiaryPublic(BaseModel):
    id: str
    first_name: str
    father_name: str
    grandfather_name: str | None
    family_name: str | None
    sex: Sex
    date_of_birth: date
    displacement_status: DisplacementStatus
    community_id: str
    household_id: str | None
    district_pcode: str
    governorate_pcode: str
    phone: str | None
    has_national_id: bool = Field(description="A national ID is on file (kept only as a keyed hash).")
    disability: Disability | None
    consent: ConsentPublic
    merged_into_id: str | None = Field(description="Set when this record was folded into another.")
    erased_on: date | None = Field(default=None, description="Set when the person's personal data was erased "
                                                               "(names, phone, national ID, exact birth date).")
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class Candidate(BaseModel):
    id: str
    score: float
    reasons: list[str]


class MergeRequest(Strict):
    duplicate_id: str


class DuplicateDecision(Strict):
    decision: Literal["distinct", "merge"] = Field(description="`distinct`: two people, never flagged again as a "
                                                               "pair; `merge`: one person, folded into `survivor_id`.")
    survivor_id: str | None = Field(default=None, description="With `merge`: which of the two records stays.")

    @model_validator(mode="after")
    def _survivor_with_merge(self) -> DuplicateDecision:
        if self.decision == "merge" and not self.survivor_id:
            raise ValueError("survivor_id is required to merge")
        if self.decision == "distinct" and self.survivor_id:
            raise ValueError("survivor_id is only for a merge")
        return self


class DuplicateReviewPublic(BaseModel):
    id: str
    status: Literal["open", "distinct", "merged"]
    source: Literal["registration", "update", "rescan"] = Field(
        description="What found the pair: a registration confirmed despite it, a corrected record, or a rescan.")
    score: float = Field(description="Under the current rules.")
    score_when_found: float
    reasons: list[str]
    beneficiary: BeneficiaryPublic = Field(description="The later record.")
    candidate: BeneficiaryPublic = Field(description="The record it may duplicate.")
    survivor_id: str | None
    decided_by: str | None
    decided_at: UtcDatetime | None
    created_at: UtcDatetime
    version: int


class DuplicateReviewSummary(BaseModel):
    open: int
    decided: int
    distinct: int
    merged: int
    closed_by_other_merge: int = Field(description="Open pairs one of whose records was merged with a third.")
    median_open_age_seconds: float | None
    median_decision_seconds: float | None = Field(description="From being found to being decided.")


class RescanResult(BaseModel):
    people: int
    keys_recomputed: int
    pairs_compared: int
    reviews_added: int
