"""Every RPC of every service checks the caller's principal (DESIGN §2): no method slips by."""

from __future__ import annotations

import pytest

from portal.forms.v1 import forms_pb2
from portal.identity.v1 import identity_pb2
from portal.scheduling.v1 import scheduling_pb2
from services.forms.servicer import FormsServicer
from services.identity.servicer import IdentityServicer
from services.scheduling.servicer import SchedulingServicer

SERVICES = [
    (identity_pb2.DESCRIPTOR.services_by_name["IdentityService"], IdentityServicer),
    (forms_pb2.DESCRIPTOR.services_by_name["FormsService"], FormsServicer),
    (scheduling_pb2.DESCRIPTOR.services_by_name["SchedulingService"], SchedulingServicer),
]


@pytest.mark.parametrize(("service", "servicer"), SERVICES, ids=lambda v: getattr(v, "name", ""))
def test_every_rpc_is_implemented_behind_requires(service, servicer) -> None:
    unchecked = [
        method.name
        for method in service.methods
        if not getattr(getattr(servicer, method.name), "__portal_requires__", False)
    ]
    assert unchecked == [], f"{service.name} methods without @requires: {unchecked}"
