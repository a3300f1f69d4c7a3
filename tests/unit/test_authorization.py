"""Every RPC of every service checks the caller's principal (DESIGN §2): no method slips by."""

from __future__ import annotations

import pytest

from portal.forms.v1 import forms_pb2
from portal.identity.v1 import identity_pb2
from portal.scheduling.v1 import scheduling_pb2
from services.forms.servicer import FormsServicer
from services.identity.servicer import IdentityServicer
from services.runtime.principal import (
    MFA_ENROLMENT_ONLY,
    PASSWORD_CHANGE_ONLY,
    Principal,
    _admitted,
)
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


def admitting(pending: str) -> set[str]:
    return {
        method.name
        for service, servicer in SERVICES
        for method in service.methods
        if pending in getattr(getattr(servicer, method.name), "__portal_pending__", ())
    }


def test_only_the_password_change_admits_a_principal_whose_password_must_change() -> None:
    assert admitting("password_change") == {"ChangePassword", "ChangeStaffPassword"}


def test_only_the_enrolment_admits_staff_who_must_set_up_two_factor_first() -> None:
    """Staff of a role that requires two-factor sign-in reach nothing else in any service."""
    assert admitting("mfa_enrolment") == {"StartTotpEnrolment", "ConfirmTotp", "GetMfaStatus"}


@pytest.mark.parametrize("pending", [PASSWORD_CHANGE_ONLY, MFA_ENROLMENT_ONLY])
def test_a_pending_staff_principal_is_refused_where_any_staff_role_is_admitted(
    pending: str,
) -> None:
    who = Principal(kind="staff", subject="u", role=pending)
    assert not _admitted(who, True, False, False, False, False)
    assert not _admitted(who, {"admin"}, True, True, False, False)
    assert _admitted(who, True, False, False, True, False) is (pending == PASSWORD_CHANGE_ONLY)
    assert _admitted(who, True, False, False, False, True) is (pending == MFA_ENROLMENT_ONLY)
    assert _admitted(
        Principal(kind="staff", subject="u", role="admin"), True, False, False, False, False
    )


def test_the_gateway_offers_practice_set_up_to_the_roles_scheduling_admits() -> None:
    """Pages and API operations hide or refuse (staff_roles.py) what scheduling refuses
    (services/scheduling/roles.py): the same sets, and the servicer uses them."""
    from services.gateway import staff_roles
    from services.scheduling import roles

    assert staff_roles.PRACTICE_SETUP == roles.PRACTICE_SETUP == {"admin"}
    assert staff_roles.AVAILABILITY == roles.AVAILABILITY == {"admin", "front_desk"}
    who = Principal(kind="staff", subject="u", role="front_desk")
    assert _admitted(who, roles.AVAILABILITY, False, False, False, False)
    assert not _admitted(who, roles.PRACTICE_SETUP, False, False, False, False)


def test_a_refused_status_change_reads_in_words() -> None:
    from services.scheduling.servicer import transition_refused

    assert transition_refused("fulfilled", "noshow") == (
        "A fulfilled appointment cannot become a no-show."
    )
    assert transition_refused("noshow", "arrived") == "A no-show appointment cannot become arrived."
    assert transition_refused("arrived", "noshow") == (
        "An arrived appointment cannot become a no-show."
    )


def test_the_gateway_offers_the_forms_set_up_and_admin_work_to_the_roles_services_admit() -> None:
    """The form library, portal forms and visit forms (forms' CATALOG_EDITORS), and staff
    users, two-factor policy and the audit log (identity's ADMIN): the gateway's copies."""
    from services.forms import rpc_common
    from services.gateway import staff_roles
    from services.identity import servicer

    assert staff_roles.FORM_CATALOG == rpc_common.CATALOG_EDITORS == {"admin", "clinician"}
    assert staff_roles.ADMIN == servicer.ADMIN == {"admin"}
