"""A demo clinic for `make run`: a few patients to find, created once, through identity itself."""

from __future__ import annotations

import grpc

from portal.forms.v1 import forms_pb2, forms_pb2_grpc
from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.runtime.principal import Principal, PrincipalCodec

# Invented people; the first two may use the portal, so credentials can be created at once.
PATIENTS = [
    ("Ada", "Lovelace", "1985-12-10", "female", "ada.lovelace@example.org", True),
    ("Grace", "Hopper", "1976-12-09", "female", "grace.hopper@example.org", True),
    ("Alan", "Turing", "1992-06-23", "male", "", False),
    ("Katherine", "Johnson", "1968-08-26", "female", "", False),
]
SEEDER = Principal(
    kind="staff",
    subject="00000000-0000-0000-0000-000000000000",
    role="admin",
    name="demo data (make run)",
)


async def seed(identity_address: str, principal_key: str) -> list[str]:
    """Register the demo patients if the registry is empty; return the names added."""
    metadata = PrincipalCodec(principal_key).metadata(SEEDER)
    async with grpc.aio.insecure_channel(identity_address) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        existing = await stub.SearchPatients(
            pb.SearchPatientsRequest(query="", limit=1), metadata=metadata, timeout=10
        )
        if existing.items:
            return []
        added = []
        for first, last, born, sex, email, portal in PATIENTS:
            reply = await stub.RegisterPatient(
                pb.RegisterPatientRequest(
                    fields=pb.PatientFields(
                        first_name=first, last_name=last, date_of_birth=born, sex=sex, email=email
                    ),
                    confirm_duplicate=True,
                ),
                metadata=metadata,
                timeout=10,
            )
            if portal:
                await stub.UpdatePatient(
                    pb.UpdatePatientRequest(
                        patient_id=reply.patient.id,
                        allow_patient_portal=True,
                        update_mask=["allow_patient_portal"],
                    ),
                    metadata=metadata,
                    timeout=10,
                )
            added.append(f"{first} {last}")
        return added


# Shipped forms the demo clinic offers in the portal, in this order (Patient Portal Forms).
PORTAL_FORMS = [
    "Consent to treatment",
    "Acknowledgment of the Notice of Privacy Practices (HIPAA)",
    "Medical history",
    "Current medications",
]


async def seed_forms(forms_address: str, principal_key: str) -> list[str]:
    """Make a few shipped forms available in the portal, unless some already are."""
    metadata = PrincipalCodec(principal_key).metadata(SEEDER)
    async with grpc.aio.insecure_channel(forms_address) as channel:
        stub = forms_pb2_grpc.FormsServiceStub(channel)
        listed = await stub.ListForms(forms_pb2.ListFormsRequest(), metadata=metadata, timeout=10)
        if any(f.available_in_portal for f in listed.items):
            return []
        ids = {f.title: f.id for f in listed.items}
        chosen = [title for title in PORTAL_FORMS if title in ids]
        await stub.SetPortalForms(
            forms_pb2.SetPortalFormsRequest(form_ids=[ids[t] for t in chosen]),
            metadata=metadata,
            timeout=10,
        )
        return chosen
