"""How the gateway names what identity holds: patient fields, sexes and portal realms.

The lists come from identity's contract (the proto descriptor), so a field or value added there
appears here without a second list. Labels are the values capitalised ("Female", "Onsite").
"""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor

from portal.identity.v1 import identity_pb2 as pb


def enum_values(enum: EnumDescriptor, prefix: str) -> list[str]:
    """An enum's values as text: SEX_FEMALE -> "female" (the unspecified zero left out)."""
    return [v.name.removeprefix(prefix).lower() for v in enum.values if v.number != 0]


# The members of identity's PatientFields, in field-number order.
PATIENT_FIELDS = tuple(field.name for field in pb.PatientFields.DESCRIPTOR.fields)
# (value, label) for the select lists, in the contract's order.
SEXES = [(value, value.capitalize()) for value in enum_values(pb.Sex.DESCRIPTOR, "SEX_")]
# Each realm's name in text, as in "Create Onsite Portal Credentials".
REALM_LABEL = {realm: realm.capitalize() for realm in enum_values(pb.Realm.DESCRIPTOR, "REALM_")}


def sex_label(value: str) -> str:
    return dict(SEXES).get(value, value)
