"""A patient's record as the portal pages show it: plain words, no empty or internal values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from portal.identity.v1 import identity_pb2 as pb
from services.gateway.clinic_time import day_month_year
from services.gateway.contact_changes import PREFERRED_CONTACT

SEX = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}


@dataclass(frozen=True)
class Profile:
    first_name: str
    full_name: str
    date_of_birth: str
    sex: str
    email: str
    phone: str
    address_lines: list[str]
    preferred_contact: str
    allowed_channels: list[str]
    chart_number: str


def long_date(iso: str) -> str:
    """'1980-03-04' -> '4 March 1980' (the value unchanged when it is not a date)."""
    try:
        day = date.fromisoformat(iso)
    except ValueError:
        return iso
    return day_month_year(day)


def profile(patient: pb.Patient) -> Profile:
    names = (patient.first_name, patient.middle_name, patient.last_name)
    channels = [
        label
        for label, allowed in (
            ("E-mail", patient.allow_email),
            ("Text messages (SMS)", patient.allow_sms),
            ("Voice calls", patient.allow_voice),
        )
        if allowed
    ]
    return Profile(
        first_name=patient.first_name,
        full_name=" ".join(name for name in names if name),
        date_of_birth=long_date(patient.date_of_birth),
        sex=SEX.get(patient.sex, patient.sex),
        email=patient.email,
        phone=patient.phone,
        address_lines=[line.strip() for line in patient.address.splitlines() if line.strip()],
        preferred_contact=PREFERRED_CONTACT.get(patient.preferred_contact, "No preference"),
        allowed_channels=channels,
        chart_number=patient.chart_number,
    )
