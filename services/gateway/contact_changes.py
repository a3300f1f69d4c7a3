"""How the patient and staff pages name a profile update's fields and statuses."""

from __future__ import annotations

from typing import Literal

from portal.identity.v1 import identity_pb2 as pb

Field = Literal["address", "phone", "email", "preferred_contact"]
FIELDS: tuple[Field, ...] = ("address", "phone", "email", "preferred_contact")
LABELS: dict[str, str] = {
    "address": "Address",
    "phone": "Phone",
    "email": "E-mail",
    "preferred_contact": "Preferred contact",
}
PREFERRED_CONTACT = {"email": "E-mail", "phone": "Phone", "mail": "Mail", "": "No preference"}
# (label, badge class) of each status identity names.
STATUS = {
    "pending": ("Pending review", "badge-info"),
    "accepted": ("Accepted", "badge-success"),
    "rejected": ("Not accepted", "badge-danger"),
    "replaced": ("Replaced by a newer request", "badge-accent"),
}


def status(value: str) -> tuple[str, str]:
    return STATUS.get(value, (value, "badge-accent"))


def lines(name: str, value: str) -> list[str]:
    """A value as lines of text (an address has several); [] when it is empty."""
    if name == "preferred_contact":
        return [PREFERRED_CONTACT.get(value, value)]
    return [line for line in value.splitlines() if line.strip()]


def asked(details: pb.ContactDetails) -> list[Field]:
    """The fields present in the message: the ones the patient asks to change."""
    return [name for name in FIELDS if details.HasField(name)]
