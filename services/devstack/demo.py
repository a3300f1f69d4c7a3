"""A demo clinic for `make run`: patients, providers and appointment types, created once,
through the services themselves."""

from __future__ import annotations

import asyncio
import time

import grpc

from portal.forms.v1 import forms_pb2, forms_pb2_grpc
from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from portal.scheduling.v1 import scheduling_pb2, scheduling_pb2_grpc
from services.runtime.principal import Principal, PrincipalSigner
from services.runtime.principal_keys import SigningKey

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


async def seed(identity_address: str, principal_key: SigningKey) -> list[str]:
    """Register the demo patients if the registry is empty; return the names added.

    `make run` holds the gateway's key (it made it), so it signs as the gateway would.
    """
    metadata = PrincipalSigner(principal_key).metadata(SEEDER)
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


# Invented providers (weekday hours in the clinic's time zone) and the types they offer:
# (name, duration, slot interval, buffer after, bookable online, offered by provider indexes).
PROVIDERS = [
    ("Dr. Amara Okafor", [("09:00", "12:30"), ("13:30", "17:00")]),
    ("Dr. Jonas Lindqvist", [("08:00", "12:00"), ("13:00", "16:00")]),
    ("Nurse Practitioner Mei Tanaka", [("10:00", "18:00")]),
]
APPOINTMENT_TYPES = [
    ("New patient visit", 40, 20, 5, True, [0, 1]),
    ("Follow-up", 20, 20, 0, True, [0, 1, 2]),
    ("Telehealth check-in", 15, 15, 0, True, [2]),
    ("Annual physical", 60, 30, 10, False, [0, 1]),
]


async def seed_scheduling(scheduling_address: str, principal_key: SigningKey) -> list[str]:
    """Add the demo providers, hours and appointment types if there are no providers yet."""
    metadata = PrincipalSigner(principal_key).metadata(SEEDER)
    async with grpc.aio.insecure_channel(scheduling_address) as channel:
        stub = scheduling_pb2_grpc.SchedulingServiceStub(channel)
        existing = await stub.ListProviders(
            scheduling_pb2.ListProvidersRequest(include_inactive=True),
            metadata=metadata,
            timeout=10,
        )
        if existing.items:
            return []
        ids = []
        for name, hours in PROVIDERS:
            provider = await stub.CreateProvider(
                scheduling_pb2.CreateProviderRequest(display_name=name),
                metadata=metadata,
                timeout=10,
            )
            weekly = [
                scheduling_pb2.WeeklyRange(weekday=day, start=start, end=end)  # type: ignore[arg-type]
                for day in range(1, 6)
                for start, end in hours
            ]
            await stub.ReplaceWorkingHours(
                scheduling_pb2.ReplaceWorkingHoursRequest(provider_id=provider.id, weekly=weekly),
                metadata=metadata,
                timeout=10,
            )
            ids.append(provider.id)
        for type_name, duration, interval, after, online, offered_by in APPOINTMENT_TYPES:
            await stub.CreateAppointmentType(
                scheduling_pb2.CreateAppointmentTypeRequest(
                    fields=scheduling_pb2.AppointmentTypeFields(
                        name=type_name,
                        duration_minutes=duration,
                        slot_interval_minutes=interval,
                        buffer_after_minutes=after,
                        bookable_online=online,
                        provider_ids=[ids[i] for i in offered_by],
                    )
                ),
                metadata=metadata,
                timeout=10,
            )
        return [name for name, _ in PROVIDERS]


# Shipped forms the demo clinic offers in the portal, in this order (Patient Portal Forms).
PORTAL_FORMS = [
    "Consent to treatment",
    "Acknowledgment of the Notice of Privacy Practices (HIPAA)",
    "Medical history",
    "Current medications",
    "Prescription refill request",  # offers the portal's Refills page
]


async def seed_forms(forms_address: str, principal_key: SigningKey) -> list[str]:
    """Make a few shipped forms available in the portal, unless some already are."""
    metadata = PrincipalSigner(principal_key).metadata(SEEDER)
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


# The visit forms a booking of each demo type puts in the patient's chart, in this order.
VISIT_FORMS = {
    "New patient visit": ["Medical history", "Current medications"],
    "Follow-up": ["Current medications"],
    "Telehealth check-in": ["Current medications"],
    "Annual physical": ["Medical history", "Current medications"],
}


async def seed_visit_forms(
    scheduling_address: str, forms_address: str, principal_key: SigningKey
) -> list[str]:
    """Give each demo appointment type its VISIT_FORMS, unless the type has visit forms already
    (a clinic's own choice is kept); return "Type: form, …" lines."""
    metadata = PrincipalSigner(principal_key).metadata(SEEDER)
    added = []
    async with (
        grpc.aio.insecure_channel(scheduling_address) as scheduling_channel,
        grpc.aio.insecure_channel(forms_address) as forms_channel,
    ):
        scheduling = scheduling_pb2_grpc.SchedulingServiceStub(scheduling_channel)
        forms = forms_pb2_grpc.FormsServiceStub(forms_channel)
        types = await scheduling.ListAppointmentTypes(
            scheduling_pb2.ListAppointmentTypesRequest(), metadata=metadata, timeout=10
        )
        listed = await forms.ListForms(forms_pb2.ListFormsRequest(), metadata=metadata, timeout=10)
        form_ids = {f.title: f.id for f in listed.items}
        for kind in types.items:
            titles = [t for t in VISIT_FORMS.get(kind.name, []) if t in form_ids]
            if not titles:
                continue
            current = await forms.GetVisitForms(
                forms_pb2.GetVisitFormsRequest(appointment_type_id=kind.id),
                metadata=metadata,
                timeout=10,
            )
            if current.forms:
                continue
            await forms.SetVisitForms(
                forms_pb2.SetVisitFormsRequest(
                    appointment_type_id=kind.id, form_ids=[form_ids[t] for t in titles]
                ),
                metadata=metadata,
                timeout=10,
            )
            added.append(f"{kind.name}: {', '.join(titles)}")
    return added


# Current medications of the demo patients who may use the portal, kept in their charts as staff
# would, so a newcomer can choose one on the portal's Refills page: (name, dose, instructions).
MEDICATIONS = {
    ("Ada", "Lovelace"): [
        ("Lisinopril", "10 mg", "One tablet each morning."),
        ("Atorvastatin", "20 mg", "One tablet at bedtime."),
    ],
    ("Grace", "Hopper"): [
        ("Metformin", "500 mg", "One tablet twice a day with meals."),
        ("Levothyroxine", "50 mcg", "One tablet before breakfast."),
    ],
}
CHART_WAIT = 15.0  # seconds; a chart opens when portal access reaches forms as an event


async def seed_medications(
    identity_address: str, forms_address: str, principal_key: SigningKey
) -> list[str]:
    """Add MEDICATIONS to each demo patient of that name whose chart has none yet (discontinued
    ones count, so a clinic's own changes are kept); return "Name: medicine, …" lines."""
    metadata = PrincipalSigner(principal_key).metadata(SEEDER)
    added = []
    async with (
        grpc.aio.insecure_channel(identity_address) as identity_channel,
        grpc.aio.insecure_channel(forms_address) as forms_channel,
    ):
        identity = pb_grpc.IdentityServiceStub(identity_channel)
        forms = forms_pb2_grpc.FormsServiceStub(forms_channel)
        for (first, last), medicines in MEDICATIONS.items():
            found = await identity.SearchPatients(
                pb.SearchPatientsRequest(query=f"{first} {last}", limit=20),
                metadata=metadata,
                timeout=10,
            )
            for patient in found.items:
                if (patient.first_name, patient.last_name) != (first, last):
                    continue
                listed = await forms.ListMedications(
                    forms_pb2.ListMedicationsRequest(
                        patient_id=patient.id, include_discontinued=True
                    ),
                    metadata=metadata,
                    timeout=10,
                )
                if listed.items:
                    continue
                for name, dose, instructions in medicines:
                    await _add_when_charted(
                        forms,
                        forms_pb2.AddMedicationRequest(
                            patient_id=patient.id, name=name, dose=dose, instructions=instructions
                        ),
                        metadata,
                    )
                added.append(f"{first} {last}: {', '.join(m for m, _, _ in medicines)}")
    return added


async def _add_when_charted(
    forms: forms_pb2_grpc.FormsServiceAsyncStub,
    request: forms_pb2.AddMedicationRequest,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """AddMedication, retried while the patient's chart is not open yet (NOT_FOUND)."""
    deadline = time.monotonic() + CHART_WAIT
    while True:
        try:
            await forms.AddMedication(request, metadata=metadata, timeout=10)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)  # the event that opens the chart is on its way
