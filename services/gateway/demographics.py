"""Patient demographics as identity names them, shared by the staff pages and the API."""

from __future__ import annotations

# The members of identity's PatientFields, in form order.
PATIENT_FIELDS = (
    "first_name",
    "middle_name",
    "last_name",
    "date_of_birth",
    "sex",
    "email",
    "phone",
    "address",
)
SEXES = [("female", "Female"), ("male", "Male"), ("other", "Other"), ("unknown", "Unknown")]
