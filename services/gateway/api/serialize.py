"""Identity's messages as the API's JSON objects."""

from __future__ import annotations

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api.json_io import timestamp
from services.gateway.demographics import PATIENT_FIELDS

CONTACT_FLAGS = ("allow_email", "allow_sms", "allow_voice")


def demographics(patient: pb.Patient) -> dict[str, object]:
    body: dict[str, object] = {
        "id": patient.id,
        "chart_number": patient.chart_number,
    }
    body.update({name: getattr(patient, name) for name in PATIENT_FIELDS})
    body["preferred_contact"] = patient.preferred_contact
    body.update({name: getattr(patient, name) for name in CONTACT_FLAGS})
    return body


def account(found: pb.PortalAccount) -> dict[str, object]:
    return {
        "username": found.username,
        "must_change_password": found.must_change_password,
        "temporary_password_expires_at": timestamp(found.temporary_password_expires_at),
        "locked_until": timestamp(found.locked_until),
        "last_sign_in_at": timestamp(found.last_sign_in_at),
        "created_at": timestamp(found.created_at),
    }


def patient(found: pb.Patient) -> dict[str, object]:
    """The whole record as staff see it, with the portal account of each realm (or null)."""
    accounts = {auth.REALM_NAME.get(a.realm, ""): a for a in found.accounts}
    body = demographics(found)
    body["allow_patient_portal"] = found.allow_patient_portal
    body["created_at"] = timestamp(found.created_at)
    body["portal"] = {
        realm: account(accounts[realm]) if realm in accounts else None for realm in auth.REALMS
    }
    return body


def summary(found: pb.PatientSummary) -> dict[str, object]:
    return {
        "id": found.id,
        "chart_number": found.chart_number,
        "first_name": found.first_name,
        "last_name": found.last_name,
        "date_of_birth": found.date_of_birth,
        "sex": found.sex,
        "allow_patient_portal": found.allow_patient_portal,
    }
