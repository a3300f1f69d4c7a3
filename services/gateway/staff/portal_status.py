"""A patient's portal state as the chart shows it: per-realm status and the Patient Info menu."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.demographics import REALM_LABEL
from services.gateway.staff.common import format_when, when


@dataclass(frozen=True)
class RealmStatus:
    realm: str
    label: str
    username: str  # "" when there is no account
    states: tuple[tuple[str, str], ...]  # short badges (level, text), most important first
    notes: tuple[str, ...]  # the times behind them, as sentences
    mfa_enrolled: bool = False

    @property
    def has_account(self) -> bool:
        return bool(self.username)


@dataclass(frozen=True)
class MenuItem:
    label: str
    href: str


def realm_statuses(
    patient: pb.Patient, zone: tzinfo = UTC, now: datetime | None = None
) -> list[RealmStatus]:
    now = now or datetime.now(UTC)
    accounts = {auth.REALM_NAME.get(a.realm, ""): a for a in patient.accounts}
    statuses = []
    for realm in auth.REALMS:
        account = accounts.get(realm)
        if account is None:
            statuses.append(RealmStatus(realm, REALM_LABEL[realm], "", (("", "No account"),), ()))
            continue
        states: list[tuple[str, str]] = []
        notes: list[str] = []
        locked = when(account.locked_until)
        if locked is not None and locked > now:
            states.append(("danger", "Locked"))
            notes.append(f"Locked until {format_when(locked, zone)}.")
        if account.must_change_password:
            states.append(("warning", "Must change password"))
            expires = when(account.temporary_password_expires_at)
            if expires is not None and expires <= now:
                states.append(("danger", "Temporary password expired"))
                notes.append(f"Temporary password expired {format_when(expires, zone)}.")
            elif expires is not None:
                notes.append(f"Temporary password expires {format_when(expires, zone)}.")
        if not states:
            states.append(("success", "Active"))
        if account.mfa_enrolled:
            states.append(("", "Two-factor sign-in on"))
        last = format_when(when(account.last_sign_in_at), zone)
        notes.append(f"Last sign-in: {last}." if last else "Never signed in.")
        statuses.append(
            RealmStatus(
                realm,
                REALM_LABEL[realm],
                account.username,
                tuple(states),
                tuple(notes),
                mfa_enrolled=account.mfa_enrolled,
            )
        )
    return statuses


def patient_info_menu(patient: pb.Patient) -> list[MenuItem]:
    """Create/Reset items that apply now; an explanation when none does."""
    base = f"/staff/patients/{patient.id}"
    if not patient.allow_patient_portal:
        # Identity refuses both create and reset while portal access is off.
        return [
            MenuItem(
                "Allow Patient Portal is No — set it under Demographics → Edit → Choices",
                f"{base}/demographics?tab=choices",
            )
        ]
    has_account = {auth.REALM_NAME.get(a.realm, "") for a in patient.accounts}
    items = [
        MenuItem(f"Create {REALM_LABEL[r]} Portal Credentials", f"{base}/portal/{r}/create")
        for r in auth.REALMS
        if r not in has_account
    ]
    items += [
        MenuItem(f"Reset {REALM_LABEL[r]} Portal Credentials", f"{base}/portal/{r}/reset")
        for r in auth.REALMS
        if r in has_account
    ]
    # A patient who lost the phone: remove the second factor (after checking who they are).
    enrolled = {auth.REALM_NAME.get(a.realm, "") for a in patient.accounts if a.mfa_enrolled}
    items += [
        MenuItem(f"Reset {REALM_LABEL[r]} Two-Factor Sign-in", f"{base}/portal/{r}/mfa-reset")
        for r in auth.REALMS
        if r in enrolled
    ]
    return items
