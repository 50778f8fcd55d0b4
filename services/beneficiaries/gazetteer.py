"""Iraq's governorates and districts (OCHA COD-AB P-codes, valid from 2019-06-03), embedded."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_CSV = Path(__file__).parent / "data" / "iraq_pcodes_adm1_adm2.csv"


@dataclass(frozen=True, slots=True)
class Area:
    pcode: str
    name_en: str
    parent_pcode: str
    admin_level: int


@cache
def _areas() -> dict[str, Area]:
    with _CSV.open(encoding="utf-8") as f:
        return {row["pcode"]: Area(row["pcode"], row["name_en"], row["parent_pcode"], int(row["admin_level"]))
                for row in csv.DictReader(f)}


def governorates() -> list[Area]:
    return [a for a in _areas().values() if a.admin_level == 1]


def districts(governorate: str | None = None) -> list[Area]:
    return [a for a in _areas().values()
            if a.admin_level == 2 and (governorate is None or a.parent_pcode == governorate)]


def district(pcode: str) -> Area | None:
    area = _areas().get(pcode)
    return area if area is not None and area.admin_level == 2 else None


def is_governorate(pcode: str) -> bool:
    area = _areas().get(pcode)
    return area is not None and area.admin_level == 1
