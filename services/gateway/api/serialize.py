"""Identity's messages as the API's response models."""

from __future__ import annotations

from typing import Any

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api.json_io import timestamp
from services.gateway.api.models import (
    Demographics,
    MyAccount,
    MyProfile,
    Patient,
    PatientSummary,
    PortalAccount,
    RealmAccounts,
)

CONTACT_FLAGS = ("allow_email", "allow_sms", "allow_voice")
# The members Demographics reads straight from identity's Patient message.
_DEMOGRAPHICS = tuple(name for name in Demographics.model_fields if name != "id")


def _demographics(patient: pb.Patient) -> dict[str, Any]:
    values = {name: getattr(patient, name) for name in _DEMOGRAPHICS}
    values["id"] = patient.id
    return values


def account(found: pb.PortalAccount) -> PortalAccount:
    return PortalAccount(
        username=found.username,
        must_change_password=found.must_change_password,
        temporary_password_expires_at=timestamp(found.temporary_password_expires_at),
        locked_until=timestamp(found.locked_until),
        last_sign_in_at=timestamp(found.last_sign_in_at),
        created_at=timestamp(found.created_at),
        mfa_enrolled=found.mfa_enrolled,
    )


def patient(found: pb.Patient) -> Patient:
    """The whole record as staff see it, with the portal account of each realm (or null)."""
    accounts = {auth.REALM_NAME.get(a.realm, ""): account(a) for a in found.accounts}
    return Patient(
        **_demographics(found),
        allow_patient_portal=found.allow_patient_portal,
        created_at=timestamp(found.created_at),
        portal=RealmAccounts(onsite=accounts.get("onsite"), offsite=accounts.get("offsite")),
    )


def my_profile(found: pb.Patient, session: pb.Session) -> MyProfile:
    return MyProfile(
        **_demographics(found),
        account=MyAccount(
            realm=auth.REALM_NAME.get(session.realm, ""),  # type: ignore[arg-type]
            username=session.username,
        ),
    )


def summary(found: pb.PatientSummary) -> PatientSummary:
    return PatientSummary(
        id=found.id,
        chart_number=found.chart_number,
        first_name=found.first_name,
        last_name=found.last_name,
        date_of_birth=found.date_of_birth,
        sex=found.sex,
        allow_patient_portal=found.allow_patient_portal,
    )
