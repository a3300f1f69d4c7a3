"""Database rows to protobuf messages."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from portal.identity.v1 import identity_pb2 as pb

REALMS: dict[str, pb.Realm.ValueType] = {"onsite": pb.REALM_ONSITE, "offsite": pb.REALM_OFFSITE}
REALM_NAMES: dict[int, str] = {v: k for k, v in REALMS.items()}
ROLES: dict[str, pb.StaffRole.ValueType] = {
    "admin": pb.STAFF_ROLE_ADMIN,
    "clinician": pb.STAFF_ROLE_CLINICIAN,
    "front_desk": pb.STAFF_ROLE_FRONT_DESK,
}
ROLE_NAMES: dict[int, str] = {v: k for k, v in ROLES.items()}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def patient(row: asyncpg.Record, accounts: list[asyncpg.Record] = ()) -> pb.Patient:  # type: ignore[assignment]
    return pb.Patient(
        id=str(row["id"]),
        chart_number=row["chart_number"],
        first_name=row["first_name"],
        middle_name=row["middle_name"],
        last_name=row["last_name"],
        date_of_birth=row["date_of_birth"].isoformat(),
        sex=row["sex"],
        email=row["email"],
        phone=row["phone"],
        address=row["address"],
        allow_patient_portal=row["allow_patient_portal"],
        preferred_contact=row["preferred_contact"],
        allow_email=row["allow_email"],
        allow_sms=row["allow_sms"],
        allow_voice=row["allow_voice"],
        created_at=timestamp(row["created_at"]),
        accounts=[account(a) for a in accounts],
    )


def summary(row: asyncpg.Record) -> pb.PatientSummary:
    return pb.PatientSummary(
        id=str(row["id"]),
        chart_number=row["chart_number"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        date_of_birth=row["date_of_birth"].isoformat(),
        sex=row["sex"],
        allow_patient_portal=row["allow_patient_portal"],
    )


def account(row: asyncpg.Record) -> pb.PortalAccount:
    return pb.PortalAccount(
        realm=REALMS[row["realm"]],
        username=row["username"],
        must_change_password=row["must_change_password"],
        temporary_password_expires_at=timestamp(row["temporary_expires_at"]),
        locked_until=timestamp(row["locked_until"]),
        created_at=timestamp(row["created_at"]),
        last_sign_in_at=timestamp(row["last_sign_in_at"]),
        mfa_enrolled=bool(row.get("mfa_enrolled", False)),
    )


def staff_user(row: asyncpg.Record) -> pb.StaffUser:
    return pb.StaffUser(
        id=str(row["id"]),
        username=row["username"],
        display_name=row["display_name"],
        role=ROLES[row["role"]],
        created_at=timestamp(row["created_at"]),
        disabled=row["disabled"],
        must_change_password=row["must_change_password"],
        locked_until=timestamp(row["locked_until"]),
        mfa_enrolled=bool(row.get("mfa_enrolled", False)),
    )


def audit_event(row: asyncpg.Record) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=row["id"],
        at=timestamp(row["at"]),
        actor_kind=row["actor_kind"],
        actor_id=row["actor_id"],
        actor_name=row["actor_name"],
        patient_id=str(row["patient_id"]) if row["patient_id"] else "",
        action=row["action"],
        outcome=row["outcome"],
        source_address=row["source_address"],
        detail=row["detail"],
        patient_name=row["patient_name"],
        chart_number=row["chart_number"],
    )
