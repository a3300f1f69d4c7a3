"""IdentityService over gRPC: every method checks the principal first (@requires).

Authentication failures always answer UNAUTHENTICATED with the same message, whatever went
wrong (unknown user, wrong password, locked account, portal access withdrawn).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import identity_pb2 as events
from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity import (
    accounts,
    audit,
    convert,
    lockout,
    mfa,
    mfa_policy,
    patients,
    profile,
    profile_updates,
    rate_limit,
    refusals,
    sessions,
    staff,
    staff_admin,
)
from services.identity.passwords import PasswordHasher, check_password, generate_password
from services.identity.session_changes import Change, SessionChanges
from services.identity.settings import IdentitySettings
from services.identity.totp import otpauth_uri
from services.runtime import audit_chain
from services.runtime.db import Conn
from services.runtime.errors import abort_invalid, abort_precondition
from services.runtime.outbox import emit
from services.runtime.principal import Principal, PrincipalVerifier, requires

Context = grpc.aio.ServicerContext[Any, Any]
STAFF = True  # any staff role
ADMIN = {"admin"}
SIGN_IN_FAILED = "Invalid username or password."
CODE_REFUSED = "That code is not correct, or it was used already."
MFA_REQUIRED = (
    "Two-factor sign-in is required for your role, so it cannot be turned off. "
    "An administrator can change that setting."
)
MFA_ISSUER = "Patient Portal"
EVENT_REALMS = {"onsite": events.REALM_ONSITE, "offsite": events.REALM_OFFSITE}
USERNAME_TAKEN = "That username is already taken."
SUMMARIES_LIMIT = 200  # ids per GetPatientSummaries call (a week of a busy calendar)
CHANGE_KINDS = {
    Change.WATCHING: pb.SessionChange.KIND_WATCHING,
    Change.CHANGED: pb.SessionChange.KIND_CHANGED,
}


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


async def parse_patient_id(context: Context, raw: str, field: str = "patient_id") -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        await abort_invalid(context, {field: ["Patient id is not valid."]})


async def parse_realm(context: Context, realm: int) -> str:
    name = convert.REALM_NAMES.get(realm)
    if name is None:
        await abort_invalid(context, {"realm": ["Realm must be onsite or offsite."]})
    return name


def patient_input(f: pb.PatientFields) -> patients.PatientInput:
    return patients.clean(
        patients.PatientInput(
            first_name=f.first_name,
            middle_name=f.middle_name,
            last_name=f.last_name,
            date_of_birth=f.date_of_birth,
            sex=f.sex.lower(),
            email=f.email,
            phone=f.phone,
            address=f.address,
        )
    )


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        principals: PrincipalVerifier,
        hasher: PasswordHasher,
        settings: IdentitySettings,
        changes: SessionChanges | None = None,
    ) -> None:
        self.pool = pool
        self.principals = principals
        self.hasher = hasher
        self.settings = settings
        self.changes = changes  # None: nobody can watch (WatchSessionChanges is UNAVAILABLE)

    # ------------------------------------------------------------------ staff

    async def _guess(
        self, table: str, row: asyncpg.Record | None, password: str, device_token: str
    ) -> tuple[lockout.Outcome, lockout.Claim | None, bool]:
        """Charge and check one guess: (outcome, claim, whether the device cookie was valid)."""
        async with self.pool.acquire() as conn:
            spent = None
            if row is not None:
                spent = await lockout.budget(conn, table, row["id"], device_token)
            outcome, claim = await lockout.check(conn, self.hasher, row, spent, password)
        return outcome, claim, spent is not None and spent.table == "trusted_devices"

    @requires(service=True)
    async def StaffSignIn(
        self, request: pb.SignInRequest, context: Context, principal: Principal
    ) -> pb.SessionGrant:
        async with self.pool.acquire() as conn:
            user = await staff.for_sign_in(conn, request.username)
        outcome, _, trusted = await self._guess(
            "staff_users", user, request.password, request.device_token
        )
        if outcome is not lockout.Outcome.OK or user is None:
            async with self.pool.acquire() as conn:
                await audit.record(
                    conn,
                    principal,
                    "auth.staff_sign_in",
                    actor_kind="staff" if user else "anonymous",
                    actor_id=str(user["id"]) if user else "",
                    actor_name=user["username"] if user else "",
                    outcome=outcome.value,
                )
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, SIGN_IN_FAILED)
        entry = audit.Entry.for_principal(
            principal,
            "auth.staff_sign_in",
            actor_kind="staff",
            actor_id=str(user["id"]),
            actor_name=user["username"],
        )
        if self._temporary_password_expired(user):
            async with self.pool.acquire() as conn:
                await audit.record(
                    conn,
                    principal,
                    entry.action,
                    actor_kind="staff",
                    actor_id=entry.actor_id,
                    actor_name=entry.actor_name,
                    outcome="expired",
                )
            await abort_precondition(
                context, "TEMPORARY_PASSWORD_EXPIRED", refusals.TEMPORARY_PASSWORD_EXPIRED
            )
        async with self.pool.acquire() as conn:
            if await mfa.enrolled(conn, "staff", user["id"]):
                await lockout.rehash_if_needed(
                    conn,
                    self.hasher,
                    "staff_users",
                    user["id"],
                    user["password_hash"],
                    request.password,
                )
                return await self._mfa_challenge(conn, principal, "staff", user["id"])
            token, session_id, expires = await sessions.start_after_sign_in(
                conn,
                table="staff_users",
                row_id=user["id"],
                lifetime=self.settings.session_lifetime,
                entry=entry,
                trusted_device=trusted,
                user_agent=request.user_agent,
            )
            device = ""
            if request.remember_device and not trusted:
                device = await lockout.trust_device(conn, "staff_users", user["id"])
            await lockout.rehash_if_needed(
                conn,
                self.hasher,
                "staff_users",
                user["id"],
                user["password_hash"],
                request.password,
            )
            enrol = await mfa_policy.must_enrol(conn, user["id"])
        grant = self._staff_grant(user, token, session_id, expires, must_enrol_mfa=enrol)
        grant.device_token = device
        return grant

    def _staff_grant(
        self,
        user: asyncpg.Record,
        token: str,
        session_id: uuid.UUID,
        expires: datetime,
        *,
        must_enrol_mfa: bool = False,
    ) -> pb.SessionGrant:
        return self._grant(
            token,
            expires,
            pb.Session(
                session_id=str(session_id),
                kind=pb.SESSION_KIND_STAFF,
                staff_user_id=str(user["id"]),
                role=convert.ROLES[user["role"]],
                display_name=user["display_name"],
                username=user["username"],
                must_change_password=user["must_change_password"],
                must_enrol_mfa=must_enrol_mfa,
            ),
        )

    @requires(staff=ADMIN)
    async def GetStaffMfaPolicy(
        self, request: pb.GetStaffMfaPolicyRequest, context: Context, principal: Principal
    ) -> pb.StaffMfaPolicy:
        async with self.pool.acquire() as conn:
            roles = await mfa_policy.required_roles(conn)
        return pb.StaffMfaPolicy(required_roles=[convert.ROLES[r] for r in roles])

    @requires(staff=ADMIN)
    async def SetStaffMfaPolicy(
        self, request: pb.SetStaffMfaPolicyRequest, context: Context, principal: Principal
    ) -> pb.StaffMfaPolicy:
        wanted = {convert.ROLE_NAMES.get(r, "") for r in request.required_roles}
        if "" in wanted:
            await abort_invalid(
                context, {"required_roles": ["Roles must be admin, clinician or front desk."]}
            )
        async with self.pool.acquire() as conn, conn.transaction():
            roles = await mfa_policy.set_required_roles(conn, wanted)
            await audit.record(
                conn, principal, "staff.mfa_policy", detail=f"required={','.join(roles) or '-'}"
            )
        return pb.StaffMfaPolicy(required_roles=[convert.ROLES[r] for r in roles])

    @requires(staff=ADMIN)
    async def ResetStaffMfa(
        self, request: pb.ResetStaffMfaRequest, context: Context, principal: Principal
    ) -> pb.RemoveTotpResponse:
        user_id = await self._staff_user_id(context, request.id)
        async with self.pool.acquire() as conn, conn.transaction():
            if await staff_admin.get(conn, user_id) is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            removed = await mfa.remove(conn, "staff", user_id)
            await audit.record(
                conn,
                principal,
                "staff.mfa_reset",
                outcome="ok" if removed else "none",
                detail=f"user={user_id}",
            )
        return pb.RemoveTotpResponse()

    @requires(staff=ADMIN)
    async def CreateStaffUser(
        self, request: pb.CreateStaffUserRequest, context: Context, principal: Principal
    ) -> pb.StaffUser:
        role = convert.ROLE_NAMES.get(request.role, "")
        # No password typed: a temporary one, changed at the first sign-in.
        temporary = "" if request.password else generate_password()
        password = request.password or temporary
        errors = staff.validate(request.username, request.display_name, role, password)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await staff.create(
                conn, self.hasher, request.username, request.display_name, role, password
            )
            if row is None:
                await abort_invalid(context, {"username": [USERNAME_TAKEN]})
            if temporary:
                row = await staff_admin.set_temporary_password(
                    conn,
                    row["id"],
                    row["password_hash"],
                    self.settings.temporary_password_lifetime,
                )
                if row is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            await audit.record(conn, principal, "staff.create", detail=f"user={row['id']}")
        created = convert.staff_user(row)
        created.temporary_password = temporary
        return created

    @requires(staff=ADMIN)
    async def ListStaffUsers(
        self, request: pb.ListStaffUsersRequest, context: Context, principal: Principal
    ) -> pb.ListStaffUsersResponse:
        rows = await self.pool.fetch(
            f"""SELECT {staff.COLUMNS}, EXISTS (
                    SELECT 1 FROM mfa_totp t WHERE t.owner_kind = 'staff'
                       AND t.owner_id = staff_users.id AND t.confirmed_at IS NOT NULL
                ) AS mfa_enrolled
                FROM staff_users ORDER BY username"""
        )
        return pb.ListStaffUsersResponse(items=[convert.staff_user(r) for r in rows])

    async def _staff_user_id(self, context: Context, raw: str, field: str = "id") -> uuid.UUID:
        try:
            return uuid.UUID(raw)
        except ValueError:
            await abort_invalid(context, {field: ["Staff user id is not valid."]})

    @requires(staff=ADMIN)
    async def UpdateStaffUser(
        self, request: pb.UpdateStaffUserRequest, context: Context, principal: Principal
    ) -> pb.StaffUser:
        user_id = await self._staff_user_id(context, request.id)
        role = convert.ROLE_NAMES.get(request.role) if request.role else None
        if request.role and role is None:
            await abort_invalid(context, {"role": ["Role must be admin, clinician or front desk."]})
        disabled = request.disabled if request.HasField("disabled") else None
        async with self.pool.acquire() as conn, conn.transaction():
            # Serialise admin changes so two admins cannot demote each other at once.
            await conn.execute("LOCK TABLE staff_users IN SHARE ROW EXCLUSIVE MODE")
            current = await staff_admin.get(conn, user_id)
            if current is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            losing_admin = current["role"] == "admin" and not current["disabled"]
            losing_admin = losing_admin and (disabled is True or role not in (None, "admin"))
            if losing_admin and await staff_admin.count_active_admins(conn) <= 1:
                await abort_precondition(context, "LAST_ADMIN", refusals.LAST_ADMIN)
            row = await staff_admin.update(conn, user_id, disabled=disabled, role=role)
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            changes = []
            if disabled is not None:
                changes.append(f"disabled={str(disabled).lower()}")
            if role is not None:
                changes.append(f"role={role}")
            await audit.record(
                conn, principal, "staff.update", detail=f"user={user_id} {' '.join(changes)}"
            )
        return convert.staff_user(row)

    @requires(staff=ADMIN)
    async def ResetStaffPassword(
        self, request: pb.ResetStaffPasswordRequest, context: Context, principal: Principal
    ) -> pb.TemporaryStaffPassword:
        user_id = await self._staff_user_id(context, request.id)
        temporary = generate_password()
        hashed = await self.hasher.hash(temporary)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await staff_admin.set_temporary_password(
                conn, user_id, hashed, self.settings.temporary_password_lifetime
            )
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            await lockout.unlock(conn, "staff_users", user_id)
            await audit.record(conn, principal, "staff.password_reset", detail=f"user={user_id}")
        return pb.TemporaryStaffPassword(
            temporary_password=temporary,
            expires_at=convert.timestamp(row["temporary_expires_at"]),
        )

    @requires(staff=ADMIN)
    async def UnlockStaffUser(
        self, request: pb.UnlockStaffUserRequest, context: Context, principal: Principal
    ) -> pb.UnlockStaffUserResponse:
        user_id = await self._staff_user_id(context, request.id)
        async with self.pool.acquire() as conn, conn.transaction():
            if await staff_admin.get(conn, user_id) is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            await lockout.unlock(conn, "staff_users", user_id)
            await audit.record(conn, principal, "staff.unlock", detail=f"user={user_id}")
        return pb.UnlockStaffUserResponse()

    @requires(staff=ADMIN)
    async def ListStaffSessions(
        self, request: pb.ListStaffSessionsRequest, context: Context, principal: Principal
    ) -> pb.ListStaffSessionsResponse:
        user_id = None
        if request.staff_user_id:
            user_id = await self._staff_user_id(context, request.staff_user_id, "staff_user_id")
        async with self.pool.acquire() as conn:
            if user_id is not None and await staff_admin.get(conn, user_id) is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such staff user")
            rows = await staff_admin.live_sessions(conn, user_id)
        return pb.ListStaffSessionsResponse(
            items=[
                pb.StaffSession(
                    id=str(r["id"]),
                    staff_user_id=str(r["staff_user_id"]),
                    username=r["username"],
                    created_at=convert.timestamp(r["created_at"]),
                    last_seen_at=convert.timestamp(r["last_seen_at"]),
                    expires_at=convert.timestamp(r["expires_at"]),
                    address=r["address"],
                    user_agent=r["user_agent"],
                )
                for r in rows
            ]
        )

    @requires(staff=ADMIN)
    async def RevokeStaffSession(
        self, request: pb.RevokeStaffSessionRequest, context: Context, principal: Principal
    ) -> pb.RevokeStaffSessionResponse:
        session_id = await self._staff_user_id(context, request.session_id, "session_id")
        async with self.pool.acquire() as conn, conn.transaction():
            owner_filter = None
            if request.staff_user_id:
                owner_filter = await self._staff_user_id(
                    context, request.staff_user_id, "staff_user_id"
                )
            owner = await staff_admin.revoke_session(conn, session_id, owner_filter)
            if owner is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such session")
            await audit.record(
                conn, principal, "staff.session_revoke", detail=f"user={owner} session={session_id}"
            )
        return pb.RevokeStaffSessionResponse()

    @requires(password_change=True, staff=True)
    async def ChangeStaffPassword(
        self, request: pb.ChangePasswordRequest, context: Context, principal: Principal
    ) -> pb.SessionGrant:
        user_id = uuid.UUID(principal.subject)
        async with self.pool.acquire() as conn:
            user = await staff_admin.get(conn, user_id)
        if user is None or user["disabled"]:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no staff user")
        # The current password is a guess like any other: charged to the user's budget first.
        outcome, _, _ = await self._guess("staff_users", user, request.current_password, "")
        errors: dict[str, list[str]] = {}
        if outcome is not lockout.Outcome.OK:
            errors["current_password"] = ["Your current password is not correct."]
        elif problems := check_password(
            request.new_password,
            username=user["username"],
            email=None,
            current_password=request.current_password,
        ):
            errors["new_password"] = problems
        if errors:
            async with self.pool.acquire() as conn:
                await audit.record(
                    conn, principal, "auth.staff_password_changed", outcome=outcome.value
                )
            await abort_invalid(context, errors)
        hashed = await self.hasher.hash(request.new_password)
        async with self.pool.acquire() as conn, conn.transaction():
            await staff_admin.set_chosen_password(conn, user_id, hashed)
            # Every session of the user ends; this browser continues with a fresh one.
            await staff_admin.revoke_sessions(conn, user_id)
            token, session_id, expires = await sessions.create(
                conn,
                lifetime=self.settings.session_lifetime,
                staff_user_id=user_id,
                address=principal.source,
                user_agent=await sessions.user_agent(conn, principal.session_id),
            )
            user = await staff_admin.get(conn, user_id)
            enrol = await mfa_policy.must_enrol(conn, user_id)
            await audit.record(conn, principal, "auth.staff_password_changed")
        if user is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no staff user")
        return self._staff_grant(user, token, session_id, expires, must_enrol_mfa=enrol)

    # ------------------------------------------------------------------ sessions

    @requires(service=True)
    async def ResolveSession(
        self, request: pb.ResolveSessionRequest, context: Context, principal: Principal
    ) -> pb.Session:
        async with self.pool.acquire() as conn:
            row = await sessions.resolve(
                conn, request.token, idle=self.settings.session_idle, touch=request.touch
            )
            own = None
            if row is not None and request.with_own_profile and row["kind"] == "patient":
                # Audited as the patient's own read, from the address the gateway saw.
                reader = Principal(
                    kind="patient",
                    subject=str(row["patient_id"]),
                    realm=row["realm"],
                    session_id=str(row["id"]),
                    source=principal.source,
                )
                own = await profile.read_own(conn, reader, row["patient_id"])
        if row is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "session ended")
        session = pb.Session(
            session_id=str(row["id"]), expires_at=convert.timestamp(row["ends_at"])
        )
        if row["kind"] == "staff":
            session.kind = pb.SESSION_KIND_STAFF
            session.staff_user_id = str(row["staff_user_id"])
            session.role = convert.ROLES[row["role"]]
            session.display_name = row["display_name"]
            session.username = row["staff_username"]
            session.must_change_password = row["must_change_password"]
            session.must_enrol_mfa = row["must_enrol_mfa"]
        else:
            session.kind = pb.SESSION_KIND_PATIENT
            session.patient_id = str(row["patient_id"])
            session.realm = convert.REALMS[row["realm"]]
            session.must_change_password = row["must_change_password"]
            session.username = row["account_username"]
            if own is not None and not own["account"]["must_change_password"]:
                session.own_profile.CopyFrom(convert.patient(own, [own["account"]]))
        return session

    @requires(service=True)
    async def EndSession(
        self, request: pb.EndSessionRequest, context: Context, principal: Principal
    ) -> pb.EndSessionResponse:
        async with self.pool.acquire() as conn:
            session_id = await sessions.revoke_token(conn, request.token)
            if session_id is not None:
                await audit.record(conn, principal, "auth.sign_out", detail=f"session={session_id}")
        return pb.EndSessionResponse()

    @requires(service=True)
    async def WatchSessionChanges(
        self, request: pb.WatchSessionChangesRequest, context: Context, principal: Principal
    ) -> AsyncIterator[pb.SessionChange]:
        """WATCHING, then CHANGED after each committed change (services.identity.session_changes);
        the stream ends when identity can no longer tell."""
        if self.changes is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "session changes are not watched")
            return
        async for change in self.changes.watch():
            yield pb.SessionChange(kind=CHANGE_KINDS[change])

    @requires(service=True)
    async def CheckSignInRate(
        self, request: pb.CheckSignInRateRequest, context: Context, principal: Principal
    ) -> pb.SignInRate:
        if request.limit < 1 or request.window_seconds < 1:
            await abort_invalid(context, {"limit": ["Limit and window must be at least 1."]})
        async with self.pool.acquire() as conn:
            verdict = await rate_limit.attempt(
                conn, request.address, limit=request.limit, window_seconds=request.window_seconds
            )
        return pb.SignInRate(allowed=verdict.allowed, retry_after_seconds=verdict.retry_after)

    # ------------------------------------------------------------------ patient registry

    @requires(staff=STAFF)
    async def RegisterPatient(
        self, request: pb.RegisterPatientRequest, context: Context, principal: Principal
    ) -> pb.RegisterPatientResponse:
        values = patient_input(request.fields)
        errors = patients.validate(values)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            matches = [] if request.confirm_duplicate else await patients.same_person(conn, values)
            if not matches:
                row = await patients.insert(conn, values)
                await emit(
                    conn,
                    "portal.identity.patient.registered",
                    str(row["id"]),
                    events.PatientRegistered(
                        patient_id=str(row["id"]), occurred_at=now_ts(), actor_id=principal.subject
                    ),
                )
                await audit.record(conn, principal, "patient.register", patient_id=row["id"])
                return pb.RegisterPatientResponse(patient=convert.patient(row))
            # The refusal shows the matches to the caller: each one's audit trail says so.
            for match in matches:
                await audit.record(
                    conn,
                    principal,
                    "patient.register",
                    patient_id=match["id"],
                    outcome="possible_duplicate",
                )
        await abort_precondition(
            context,
            "DUPLICATE_PATIENT",
            refusals.DUPLICATE_PATIENT,
            "",
            pb.PossibleDuplicates(patients=[convert.summary(m) for m in matches]),
        )

    @requires(staff=STAFF)
    async def SearchPatients(
        self, request: pb.SearchPatientsRequest, context: Context, principal: Principal
    ) -> pb.SearchPatientsResponse:
        if len(request.query) > 200:
            await abort_invalid(context, {"query": ["Search text is too long."]})
        limit = min(max(request.limit or 25, 1), 100)

        async def find() -> list[asyncpg.Record]:
            async with self.pool.acquire() as conn:
                return await patients.search(conn, request.query, limit)

        async def log() -> None:
            async with self.pool.acquire() as conn:
                await audit.record(conn, principal, "patient.search")

        # The audit row's commit and the search run side by side: one waits on the disk, the
        # other on the index.
        rows, _ = await asyncio.gather(find(), log())
        return pb.SearchPatientsResponse(items=[convert.summary(r) for r in rows])

    @requires(staff=STAFF)
    async def GetPatient(
        self, request: pb.GetPatientRequest, context: Context, principal: Principal
    ) -> pb.Patient:
        patient_id = await parse_patient_id(context, request.patient_id)
        async with self.pool.acquire() as conn:
            row = await patients.get(conn, patient_id)
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
            found = await accounts.by_patient(conn, patient_id)
            await audit.record(conn, principal, "patient.read", patient_id=patient_id)
        return convert.patient(row, found)

    @requires(staff=STAFF)
    async def GetPatientSummaries(
        self, request: pb.GetPatientSummariesRequest, context: Context, principal: Principal
    ) -> pb.GetPatientSummariesResponse:
        wanted: list[uuid.UUID] = []
        for raw in request.patient_ids:
            wanted.append(await parse_patient_id(context, raw, "patient_ids"))
        wanted = list(dict.fromkeys(wanted))
        if not 1 <= len(wanted) <= SUMMARIES_LIMIT:
            await abort_invalid(
                context, {"patient_ids": [f"Send 1 to {SUMMARIES_LIMIT} patient ids."]}
            )
        async with self.pool.acquire() as conn, conn.transaction():
            rows = {r["id"]: r for r in await patients.get_many(conn, wanted)}
            found = [rows[p] for p in wanted if p in rows]
            await audit.record_each(conn, principal, "patient.read", [r["id"] for r in found])
        return pb.GetPatientSummariesResponse(items=[convert.summary(r) for r in found])

    @requires(staff=STAFF)
    async def UpdatePatient(
        self, request: pb.UpdatePatientRequest, context: Context, principal: Principal
    ) -> pb.Patient:
        patient_id = await parse_patient_id(context, request.patient_id)
        mask = set(request.update_mask)
        unknown = mask - patients.DEMOGRAPHICS - patients.CHOICES
        if unknown or not mask:
            await abort_invalid(
                context, {"update_mask": [f"Unknown or no fields: {', '.join(sorted(unknown))}"]}
            )
        values = patient_input(request.fields)
        errors = patients.validate(values, fields=mask & patients.DEMOGRAPHICS)
        if (
            "preferred_contact" in mask
            and request.preferred_contact not in patients.CONTACT_PREFERENCES
        ):
            errors["preferred_contact"] = ["Preferred contact must be e-mail, phone or mail."]
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await patients.get(conn, patient_id, lock=True)
            if current is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
            changes: dict[str, object] = {
                name: (
                    patients.parse_date(values.date_of_birth)
                    if name == "date_of_birth"
                    else getattr(values, name)
                )
                for name in mask & patients.DEMOGRAPHICS
            }
            changes.update({name: getattr(request, name) for name in mask & patients.CHOICES})
            row = await patients.update(conn, patient_id, changes)
            await audit.record(
                conn,
                principal,
                "patient.update",
                patient_id=patient_id,
                detail="fields=" + ",".join(sorted(mask)),
            )
            if row["allow_patient_portal"] != current["allow_patient_portal"]:
                await self._portal_access_changed(
                    conn, principal, patient_id, row["allow_patient_portal"]
                )
            found = await accounts.by_patient(conn, patient_id)
        return convert.patient(row, found)

    async def _portal_access_changed(
        self, conn: Conn, principal: Principal, patient_id: uuid.UUID, allowed: bool
    ) -> None:
        if not allowed:
            await sessions.revoke_patient(conn, patient_id)
        kind = "granted" if allowed else "revoked"
        await emit(
            conn,
            f"portal.identity.portal_access.{kind}",
            str(patient_id),
            events.PortalAccessChanged(
                patient_id=str(patient_id),
                allowed=allowed,
                occurred_at=now_ts(),
                actor_id=principal.subject,
            ),
        )
        await audit.record(conn, principal, f"portal_access.{kind}", patient_id=patient_id)

    # ------------------------------------------------------------------ credentials

    async def _portal_patient(
        self, conn: Conn, context: Context, raw_id: str, *, lock: bool = False
    ) -> asyncpg.Record:
        patient_id = await parse_patient_id(context, raw_id)
        row = await patients.get(conn, patient_id, lock=lock)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
        if not row["allow_patient_portal"]:
            await abort_precondition(context, "PORTAL_NOT_ALLOWED", refusals.PORTAL_NOT_ALLOWED)
        return row

    async def _refuse_second_account(
        self, conn: Conn, context: Context, patient_id: uuid.UUID, realm: str
    ) -> None:
        if await accounts.get(conn, patient_id, realm) is not None:
            await abort_precondition(context, "ACCOUNT_EXISTS", refusals.account_exists(realm))

    @requires(staff=STAFF)
    async def SuggestCredentials(
        self, request: pb.SuggestCredentialsRequest, context: Context, principal: Principal
    ) -> pb.SuggestCredentialsResponse:
        realm = await parse_realm(context, request.realm)
        async with self.pool.acquire() as conn:
            patient = await self._portal_patient(conn, context, request.patient_id)
            await self._refuse_second_account(conn, context, patient["id"], realm)
            username = await accounts.suggest_username(
                conn, patient["first_name"], patient["last_name"]
            )
        return pb.SuggestCredentialsResponse(username=username, password=generate_password())

    @requires(staff=STAFF)
    async def IssueCredentials(
        self, request: pb.IssueCredentialsRequest, context: Context, principal: Principal
    ) -> pb.IssuedCredentials:
        realm = await parse_realm(context, request.realm)
        async with self.pool.acquire() as conn, conn.transaction():
            # Locking the patient row serialises two staff pressing Create at the same moment.
            patient = await self._portal_patient(conn, context, request.patient_id, lock=True)
            await self._refuse_second_account(conn, context, patient["id"], realm)
            username = request.username.strip() or await accounts.suggest_username(
                conn, patient["first_name"], patient["last_name"]
            )
            password = request.password or generate_password()
            errors: dict[str, list[str]] = {}
            if problems := accounts.username_problems(username):
                errors["username"] = problems
            elif await accounts.username_taken(conn, username):
                errors["username"] = [USERNAME_TAKEN]
            if problems := check_password(password, username=username, email=patient["email"]):
                errors["password"] = problems
            if errors:
                await abort_invalid(context, errors)
            try:
                account = await accounts.create(
                    conn,
                    patient_id=patient["id"],
                    realm=realm,
                    username=username,
                    password_hash=await self.hasher.hash(password),
                    temporary_lifetime=self.settings.temporary_password_lifetime,
                )
            except accounts.UsernameTaken:
                await abort_invalid(context, {"username": [USERNAME_TAKEN]})
            await self._credentials_event(conn, principal, account, "issued")
        return self._issued(patient, account, password)

    @requires(staff=STAFF)
    async def ResetCredentials(
        self, request: pb.ResetCredentialsRequest, context: Context, principal: Principal
    ) -> pb.IssuedCredentials:
        realm = await parse_realm(context, request.realm)
        async with self.pool.acquire() as conn, conn.transaction():
            patient = await self._portal_patient(
                conn, context, request.patient_id, lock=not request.validate_only
            )
            account = await accounts.get(conn, patient["id"], realm)
            if account is None:
                await abort_precondition(context, "NO_ACCOUNT", refusals.no_account(realm))
            if request.validate_only:
                return pb.IssuedCredentials(
                    patient_id=str(patient["id"]), realm=request.realm, username=account["username"]
                )
            password = generate_password()
            account = await accounts.set_temporary_password(
                conn,
                account["id"],
                await self.hasher.hash(password),
                self.settings.temporary_password_lifetime,
            )
            await sessions.revoke_account(conn, account["id"])
            await self._credentials_event(conn, principal, account, "reset")
        return self._issued(patient, account, password)

    @requires(staff=STAFF)
    async def RecordLetterDownloaded(
        self, request: pb.RecordLetterDownloadedRequest, context: Context, principal: Principal
    ) -> pb.RecordLetterDownloadedResponse:
        patient_id = await parse_patient_id(context, request.patient_id)
        realm = await parse_realm(context, request.realm)
        async with self.pool.acquire() as conn, conn.transaction():
            if await accounts.get(conn, patient_id, realm) is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such account")
            await audit.record(
                conn,
                principal,
                "credentials.letter_downloaded",
                patient_id=patient_id,
                detail=f"realm={realm}",
            )
        return pb.RecordLetterDownloadedResponse()

    async def _credentials_event(
        self, conn: Conn, principal: Principal, account: asyncpg.Record, kind: str
    ) -> None:
        await emit(
            conn,
            f"portal.identity.credentials.{kind}",
            str(account["id"]),
            events.CredentialsIssued(
                patient_id=str(account["patient_id"]),
                realm=EVENT_REALMS[account["realm"]],
                account_id=str(account["id"]),
                temporary=True,
                expires_at=convert.timestamp(account["temporary_expires_at"]),
                occurred_at=now_ts(),
                actor_id=principal.subject,
            ),
        )
        await audit.record(
            conn,
            principal,
            f"credentials.{kind}",
            patient_id=account["patient_id"],
            detail=f"realm={account['realm']}",
        )

    @staticmethod
    def _issued(
        patient: asyncpg.Record, account: asyncpg.Record, password: str
    ) -> pb.IssuedCredentials:
        return pb.IssuedCredentials(
            patient_id=str(patient["id"]),
            realm=convert.REALMS[account["realm"]],
            username=account["username"],
            password=password,
            temporary=True,
            expires_at=convert.timestamp(account["temporary_expires_at"]),
            patient_name=f"{patient['first_name']} {patient['last_name']}",
        )

    # ------------------------------------------------------------------ patient side

    @requires(service=True)
    async def PatientSignIn(
        self, request: pb.PatientSignInRequest, context: Context, principal: Principal
    ) -> pb.SessionGrant:
        realm = await parse_realm(context, request.realm)
        async with self.pool.acquire() as conn:
            account = await accounts.for_sign_in(conn, realm, request.username)
        if account is not None and not account["allow_patient_portal"]:
            account = None  # portal access withdrawn: as if the account did not exist
        outcome, claim, trusted = await self._guess(
            "portal_accounts", account, request.password, request.device_token
        )
        if outcome is not lockout.Outcome.OK or account is None:
            await self._patient_sign_in_failed(principal, realm, account, outcome, claim)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, SIGN_IN_FAILED)
        entry = audit.Entry.for_principal(
            principal,
            "auth.patient_sign_in",
            actor_kind="patient",
            actor_id=str(account["id"]),
            patient_id=account["patient_id"],
            detail=f"realm={realm}",
        )
        if self._temporary_password_expired(account):
            async with self.pool.acquire() as conn:
                await audit.record(
                    conn,
                    principal,
                    entry.action,
                    actor_kind="patient",
                    actor_id=entry.actor_id,
                    patient_id=account["patient_id"],
                    outcome="expired",
                    detail=entry.detail,
                )
            await abort_precondition(
                context, "TEMPORARY_PASSWORD_EXPIRED", refusals.TEMPORARY_PASSWORD_EXPIRED
            )
        async with self.pool.acquire() as conn:
            if await mfa.enrolled(conn, "patient", account["id"]):
                await lockout.rehash_if_needed(
                    conn,
                    self.hasher,
                    "portal_accounts",
                    account["id"],
                    account["password_hash"],
                    request.password,
                )
                return await self._mfa_challenge(conn, principal, "patient", account["id"])
            token, session_id, expires = await sessions.start_after_sign_in(
                conn,
                table="portal_accounts",
                row_id=account["id"],
                lifetime=self.settings.session_lifetime,
                entry=entry,
                trusted_device=trusted,
                user_agent=request.user_agent,
            )
            device = ""
            if request.remember_device and not trusted:
                device = await lockout.trust_device(conn, "portal_accounts", account["id"])
            await lockout.rehash_if_needed(
                conn,
                self.hasher,
                "portal_accounts",
                account["id"],
                account["password_hash"],
                request.password,
            )
        grant = self._patient_grant(account, token, session_id, expires)
        grant.device_token = device
        return grant

    @staticmethod
    def _temporary_password_expired(account: asyncpg.Record) -> bool:
        expires = account["temporary_expires_at"]
        return bool(
            account["must_change_password"] and expires is not None and expires <= account["db_now"]
        )

    async def _patient_sign_in_failed(
        self,
        principal: Principal,
        realm: str,
        account: asyncpg.Record | None,
        outcome: lockout.Outcome,
        claim: lockout.Claim | None,
    ) -> None:
        failures = claim.failures if claim else 0
        locked_until = claim.locked_until if claim and claim.locks else None
        async with self.pool.acquire() as conn, conn.transaction():
            await audit.record(
                conn,
                principal,
                "auth.patient_sign_in",
                actor_kind="patient" if account else "anonymous",
                actor_id=str(account["id"]) if account else "",
                patient_id=account["patient_id"] if account else None,
                outcome=outcome.value,
                detail=f"realm={realm}",
            )
            aggregate = str(account["id"]) if account else "unknown"
            message = events.LoginFailed(
                realm=EVENT_REALMS[realm],
                account_id=str(account["id"]) if account else "",
                consecutive_failures=failures,
                locked_until=convert.timestamp(locked_until),
                occurred_at=now_ts(),
            )
            await emit(conn, "portal.identity.login.failed", aggregate, message)
            if outcome is lockout.Outcome.LOCKED_NOW:
                await emit(conn, "portal.identity.login.locked", aggregate, message)

    def _patient_grant(
        self, account: asyncpg.Record, token: str, session_id: uuid.UUID, expires: datetime
    ) -> pb.SessionGrant:
        return self._grant(
            token,
            expires,
            pb.Session(
                session_id=str(session_id),
                kind=pb.SESSION_KIND_PATIENT,
                patient_id=str(account["patient_id"]),
                realm=convert.REALMS[account["realm"]],
                must_change_password=account["must_change_password"],
                username=account["username"],
            ),
        )

    def _grant(self, token: str, expires: datetime, session: pb.Session) -> pb.SessionGrant:
        """The new session's token, and when it ends if left idle (or at its absolute end)."""
        ending = convert.timestamp(min(expires, datetime.now(UTC) + self.settings.session_idle))
        if ending is not None:
            session.expires_at.CopyFrom(ending)
        return pb.SessionGrant(token=token, session=session)

    @requires(password_change=True, patient=True)
    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Context, principal: Principal
    ) -> pb.SessionGrant:
        patient_id = uuid.UUID(principal.subject)
        async with self.pool.acquire() as conn:
            found = await accounts.get(conn, patient_id, principal.realm)
        # The current password is a guess like any other: charged (and committed) first.
        outcome, _, _ = await self._guess("portal_accounts", found, request.current_password, "")
        async with self.pool.acquire() as conn, conn.transaction():
            account = await accounts.get(conn, patient_id, principal.realm)
            patient = await patients.get(conn, patient_id)
            if account is None or patient is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no account")
            errors: dict[str, list[str]] = {}
            if outcome is not lockout.Outcome.OK:
                errors["current_password"] = ["Your current password is not correct."]
            elif problems := check_password(
                request.new_password,
                username=account["username"],
                email=patient["email"],
                current_password=request.current_password,
            ):
                errors["new_password"] = problems
            if errors:
                await abort_invalid(context, errors)
            account = await accounts.set_chosen_password(
                conn, account["id"], await self.hasher.hash(request.new_password)
            )
            # Every session of the account ends; this browser continues with a fresh one.
            await sessions.revoke_account(conn, account["id"])
            token, session_id, expires = await sessions.create(
                conn,
                lifetime=self.settings.session_lifetime,
                account_id=account["id"],
                address=principal.source,
                user_agent=await sessions.user_agent(conn, principal.session_id),
            )
            grant = self._patient_grant(account, token, session_id, expires)
            await emit(
                conn,
                "portal.identity.password.changed",
                str(account["id"]),
                events.PasswordChanged(
                    patient_id=str(patient_id),
                    realm=EVENT_REALMS[account["realm"]],
                    account_id=str(account["id"]),
                    occurred_at=now_ts(),
                ),
            )
            await audit.record(conn, principal, "auth.password_changed", patient_id=patient_id)
        return grant

    @requires(patient=True)
    async def GetMyProfile(
        self, request: pb.GetMyProfileRequest, context: Context, principal: Principal
    ) -> pb.Patient:
        patient_id = uuid.UUID(principal.subject)  # never an id from the request
        async with self.pool.acquire() as conn:
            row = await profile.read_own(conn, principal, patient_id)  # audited when returned
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
        if row["account"]["must_change_password"]:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "change your password first")
        return convert.patient(row, [row["account"]])

    # ------------------------------------------------------------------ profile updates

    @requires(patient=True)
    async def ProposeProfileUpdate(
        self, request: pb.ProposeProfileUpdateRequest, context: Context, principal: Principal
    ) -> pb.ProfileUpdate:
        patient_id = uuid.UUID(principal.subject)  # never an id from the request
        asked = profile_updates.requested(request.proposed)
        if not asked:
            await abort_invalid(context, {"proposed": [profile_updates.NOTHING_PROPOSED]})
        values, errors = profile_updates.clean(asked)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            patient = await patients.get(conn, patient_id, lock=True)
            if patient is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
            changed = profile_updates.changes(values, patient)
            if not changed:
                await abort_invalid(context, {"proposed": [profile_updates.NO_CHANGE]})
            row, replaced = await profile_updates.propose(conn, patient_id, changed)
            fields = profile_updates.proposed_fields(row)
            await emit(
                conn,
                "portal.identity.profile_update.proposed",
                str(patient_id),
                events.ProfileUpdateProposed(
                    profile_update_id=str(row["id"]),
                    patient_id=str(patient_id),
                    fields=fields,
                    replaced_id=str(replaced or ""),
                    occurred_at=now_ts(),
                ),
            )
            await audit.record(
                conn,
                principal,
                "profile_update.propose",
                patient_id=patient_id,
                detail=f"update={row['id']} fields={','.join(fields)}"
                + (f" replaced={replaced}" if replaced else ""),
            )
        return profile_updates.message(row)

    @requires(patient=True)
    async def ListMyProfileUpdates(
        self, request: pb.ListMyProfileUpdatesRequest, context: Context, principal: Principal
    ) -> pb.ListProfileUpdatesResponse:
        patient_id = uuid.UUID(principal.subject)  # never an id from the request
        limit = min(max(request.limit or 20, 1), 100)
        async with self.pool.acquire() as conn:
            rows = await profile_updates.of_patient(conn, patient_id, limit)
            await audit.record(conn, principal, "profile_update.read_own", patient_id=patient_id)
        return pb.ListProfileUpdatesResponse(items=[profile_updates.message(r) for r in rows])

    @requires(staff=STAFF)
    async def ListProfileUpdates(
        self, request: pb.ListProfileUpdatesRequest, context: Context, principal: Principal
    ) -> pb.ListProfileUpdatesResponse:
        if request.status and request.status not in profile_updates.STATUSES:
            await abort_invalid(
                context,
                {"status": [f"Status must be one of {', '.join(profile_updates.STATUSES)}."]},
            )
        patient_id = None
        if request.patient_id:
            patient_id = await parse_patient_id(context, request.patient_id)
        limit = min(max(request.limit or 100, 1), 500)
        async with self.pool.acquire() as conn:
            rows = await profile_updates.for_staff(
                conn, status=request.status, patient_id=patient_id, limit=limit
            )
            await profile_updates.audit_reads(
                conn, principal, "profile_update.read", (r["patient_id"] for r in rows)
            )
        return pb.ListProfileUpdatesResponse(
            items=[profile_updates.message(r, staff=True) for r in rows]
        )

    @requires(staff=STAFF)
    async def DecideProfileUpdate(
        self, request: pb.DecideProfileUpdateRequest, context: Context, principal: Principal
    ) -> pb.ProfileUpdate:
        errors: dict[str, list[str]] = {}
        try:
            update_id = uuid.UUID(request.id)
        except ValueError:
            errors["id"] = ["Profile update id is not valid."]
        status = profile_updates.DECISIONS.get(request.decision)
        if status is None:
            errors["decision"] = [profile_updates.DECISION]
        note, problems = profile_updates.clean_note(request.note)
        errors.update(problems)
        if errors or status is None:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            patient_id = await profile_updates.patient_of(conn, update_id)
            # The patient's row first, as ProposeProfileUpdate locks it: no deadlock between them.
            patient = (
                None if patient_id is None else await patients.get(conn, patient_id, lock=True)
            )
            found = await profile_updates.get_for_decision(conn, update_id)
            if patient is None or found is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such profile update")
            if found["status"] != "pending":
                await abort_precondition(
                    context,
                    "PROFILE_UPDATE_DECIDED",
                    refusals.profile_update_decided(found["status"]),
                )
            fields = profile_updates.proposed_fields(found)
            previous = {name: patient[name] for name in fields}
            row = await profile_updates.decide(conn, update_id, status, note, principal, previous)
            detail = f"update={update_id} fields={','.join(fields)}"
            if status == "accepted":
                # Only the proposed fields: whatever else changed meanwhile stays.
                await patients.update(
                    conn, patient["id"], {name: found[f"proposed_{name}"] for name in fields}
                )
                await audit.record(
                    conn, principal, "patient.update", patient_id=patient["id"], detail=detail
                )
            await emit(
                conn,
                "portal.identity.profile_update.decided",
                str(patient["id"]),
                events.ProfileUpdateDecided(
                    profile_update_id=str(update_id),
                    patient_id=str(patient["id"]),
                    status=status,
                    fields=fields,
                    occurred_at=now_ts(),
                    actor_id=principal.subject,
                ),
            )
            await audit.record(
                conn,
                principal,
                f"profile_update.{request.decision}",
                patient_id=patient["id"],
                detail=detail,
            )
        return profile_updates.message(row)

    @requires(staff=STAFF)
    async def ListWorkQueue(
        self, request: pb.ListWorkQueueRequest, context: Context, principal: Principal
    ) -> pb.ListWorkQueueResponse:
        # Filters naming another service's kinds or statuses select nothing here.
        if request.kind not in ("", profile_updates.QUEUE_KIND) or (
            request.status and request.status not in profile_updates.STATUSES
        ):
            return pb.ListWorkQueueResponse()
        limit = min(max(request.limit or 100, 1), 500)
        async with self.pool.acquire() as conn:
            rows, total = await profile_updates.queue(
                conn, status=request.status, limit=limit, count_only=request.count_only
            )
            await profile_updates.audit_reads(
                conn, principal, "work_queue.read", (r["patient_id"] for r in rows)
            )
        return pb.ListWorkQueueResponse(
            items=[profile_updates.queue_item(r) for r in rows], total=total
        )

    # ------------------------------------------------------------------ audit

    @requires(staff=ADMIN)
    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context, principal: Principal
    ) -> pb.ListAuditEventsResponse:
        patient_id = None
        if request.patient_id:
            patient_id = await parse_patient_id(context, request.patient_id)
        rows = await audit.search(
            self.pool,
            audit.Filters(
                patient_id=patient_id,
                patient=request.patient.strip() or None,
                actor_id=request.actor_id or None,
                staff_username=request.staff_username.strip() or None,
                action=request.action or None,
                since=request.since.ToDatetime(UTC) if request.HasField("since") else None,
                until=request.until.ToDatetime(UTC) if request.HasField("until") else None,
                before_id=request.before_id or None,
            ),
            limit=min(max(request.limit or 50, 1), 500),
        )
        return pb.ListAuditEventsResponse(items=[convert.audit_event(r) for r in rows])

    @requires(staff=ADMIN)
    async def VerifyAuditLog(
        self, request: pb.VerifyAuditLogRequest, context: Context, principal: Principal
    ) -> pb.AuditLogVerification:
        async with self.pool.acquire() as conn:
            result = await audit_chain.verify(conn, "audit_log")
            outcome = "ok" if result.valid else "broken"
            detail = f"rows={result.rows} first_broken={result.first_broken or ''}"
            await audit.record(conn, principal, "audit.verify", outcome=outcome, detail=detail)
        return pb.AuditLogVerification(
            valid=result.valid,
            rows=result.rows,
            first_broken=result.first_broken or 0,
            head=result.head,
        )

    # ------------------------------------------------------------------ two-factor sign-in

    async def _mfa_challenge(
        self, conn: Conn, principal: Principal, kind: str, owner_id: uuid.UUID
    ) -> pb.SessionGrant:
        challenge = await mfa.new_challenge(conn, kind, owner_id)
        await audit.record(
            conn,
            principal,
            f"auth.{kind}_sign_in",
            actor_kind=kind,
            actor_id=str(owner_id),
            outcome="mfa_required",
        )
        return pb.SessionGrant(mfa_challenge=challenge)

    async def _owner(
        self, conn: Conn, context: Context, principal: Principal
    ) -> tuple[str, uuid.UUID, str]:
        """The caller's (kind, staff user or portal account id, name for the authenticator)."""
        if not principal.is_patient:
            row = await conn.fetchrow(
                "SELECT id, username FROM staff_users WHERE id = $1", uuid.UUID(principal.subject)
            )
            kind = "staff"
        else:
            row = await accounts.get(conn, uuid.UUID(principal.subject), principal.realm)
            kind = "patient"
        if row is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no account")
        return kind, row["id"], row["username"]

    async def _mfa_audit(
        self, conn: Conn, principal: Principal, action: str, outcome: str = "ok"
    ) -> None:
        patient_id = uuid.UUID(principal.subject) if principal.is_patient else None
        await audit.record(conn, principal, action, patient_id=patient_id, outcome=outcome)

    async def _refuse_code(self, context: Context, result: mfa.Check) -> None:
        if result is mfa.Check.LIMITED:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many wrong codes; try again later."
            )
        await abort_invalid(context, {"code": [CODE_REFUSED]})

    @requires(staff=STAFF, patient=True, mfa_enrolment=True)
    async def StartTotpEnrolment(
        self, request: pb.StartTotpEnrolmentRequest, context: Context, principal: Principal
    ) -> pb.TotpEnrolment:
        async with self.pool.acquire() as conn, conn.transaction():
            kind, owner_id, name = await self._owner(conn, context, principal)
            secret = await mfa.start_enrolment(conn, kind, owner_id)
            if secret is None:
                await abort_precondition(
                    context, "MFA_ENROLLED", "Two-factor sign-in is on already; remove it first."
                )
            await self._mfa_audit(conn, principal, "mfa.enrol_started")
        return pb.TotpEnrolment(secret=secret, otpauth_uri=otpauth_uri(secret, name, MFA_ISSUER))

    @requires(staff=STAFF, patient=True, mfa_enrolment=True)
    async def ConfirmTotp(
        self, request: pb.ConfirmTotpRequest, context: Context, principal: Principal
    ) -> pb.RecoveryCodes:
        async with self.pool.acquire() as conn, conn.transaction():
            kind, owner_id, _ = await self._owner(conn, context, principal)
            result = await mfa.check(
                conn, kind, owner_id, request.code, confirmed=False, recovery=False
            )
            if result is mfa.Check.OK:
                codes = await mfa.confirm(conn, kind, owner_id)
                await self._mfa_audit(conn, principal, "mfa.enrolled")
                return pb.RecoveryCodes(codes=codes)
        if result is mfa.Check.NONE:
            await abort_precondition(context, "NO_PENDING_ENROLMENT", "Start the enrolment first.")
        await self._refuse_code(context, result)
        raise AssertionError("unreachable")

    @requires(staff=STAFF, patient=True)
    async def RemoveTotp(
        self, request: pb.RemoveTotpRequest, context: Context, principal: Principal
    ) -> pb.RemoveTotpResponse:
        async with self.pool.acquire() as conn, conn.transaction():
            kind, owner_id, _ = await self._owner(conn, context, principal)
            if kind == "staff" and await mfa_policy.required_for(conn, owner_id):
                await abort_precondition(context, "MFA_REQUIRED", MFA_REQUIRED)
            result = await mfa.check(
                conn, kind, owner_id, request.code, confirmed=True, recovery=True
            )
            if result is mfa.Check.OK:
                await mfa.remove(conn, kind, owner_id)
                await self._mfa_audit(conn, principal, "mfa.removed")
                return pb.RemoveTotpResponse()
        if result is mfa.Check.NONE:
            await abort_precondition(context, "MFA_NOT_ENROLLED", "Two-factor sign-in is off.")
        await self._refuse_code(context, result)
        raise AssertionError("unreachable")

    @requires(staff=STAFF, patient=True, mfa_enrolment=True)
    async def GetMfaStatus(
        self, request: pb.GetMfaStatusRequest, context: Context, principal: Principal
    ) -> pb.MfaStatus:
        async with self.pool.acquire() as conn:
            kind, owner_id, _ = await self._owner(conn, context, principal)
            enrolled, pending, left = await mfa.status(conn, kind, owner_id)
            required = kind == "staff" and await mfa_policy.required_for(conn, owner_id)
        return pb.MfaStatus(
            enrolled=enrolled,
            pending=pending,
            recovery_codes_left=left,
            removal_refused=MFA_REQUIRED if required else "",
        )

    @requires(service=True)
    async def CompleteMfaSignIn(
        self, request: pb.CompleteMfaSignInRequest, context: Context, principal: Principal
    ) -> pb.SessionGrant:
        async with self.pool.acquire() as conn:
            kind = "staff" if request.kind == pb.SESSION_KIND_STAFF else "patient"
            owner = await mfa.attempt_challenge(conn, request.challenge, kind)
            if owner is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, CODE_REFUSED)
                raise AssertionError("unreachable")
            kind, owner_id = owner
            async with conn.transaction():
                result = await mfa.check(
                    conn, kind, owner_id, request.code, confirmed=True, recovery=True
                )
            action = f"auth.{kind}_sign_in"
            if result is not mfa.Check.OK:
                await audit.record(
                    conn,
                    principal,
                    action,
                    actor_kind=kind,
                    actor_id=str(owner_id),
                    outcome=f"mfa_{result.value}",
                )
                if result is mfa.Check.LIMITED:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "Too many wrong codes; try again later.",
                    )
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, CODE_REFUSED)
            await mfa.end_challenge(conn, request.challenge)
            table = "staff_users" if kind == "staff" else "portal_accounts"
            # Both factors passed: a device cookie of this user keeps its budget; a browser
            # without a valid one is remembered now, as after a password-only sign-in.
            spent = await lockout.budget(conn, table, owner_id, request.device_token)
            trusted = spent.table == "trusted_devices"
            if kind == "staff":
                grant = await self._staff_session(
                    conn, context, principal, owner_id, trusted, request.user_agent
                )
            else:
                realm = convert.REALM_NAMES.get(request.realm, "")
                grant = await self._patient_session(
                    conn, context, principal, owner_id, realm, trusted, request.user_agent
                )
            if request.remember_device and not trusted:
                grant.device_token = await lockout.trust_device(conn, table, owner_id)
            return grant

    async def _staff_session(
        self,
        conn: Conn,
        context: Context,
        principal: Principal,
        user_id: uuid.UUID,
        trusted_device: bool,
        user_agent: str,
    ) -> pb.SessionGrant:
        user = await conn.fetchrow(
            f"SELECT {staff.COLUMNS} FROM staff_users WHERE id = $1 AND NOT disabled", user_id
        )
        if user is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, SIGN_IN_FAILED)
            raise AssertionError("unreachable")
        token, session_id, expires = await sessions.start_after_sign_in(
            conn,
            table="staff_users",
            row_id=user["id"],
            lifetime=self.settings.session_lifetime,
            entry=audit.Entry.for_principal(
                principal,
                "auth.staff_sign_in",
                actor_kind="staff",
                actor_id=str(user["id"]),
                actor_name=user["username"],
                detail="mfa=totp",
            ),
            trusted_device=trusted_device,
            user_agent=user_agent,
        )
        return self._staff_grant(user, token, session_id, expires)

    async def _patient_session(
        self,
        conn: Conn,
        context: Context,
        principal: Principal,
        account_id: uuid.UUID,
        realm: str,
        trusted_device: bool,
        user_agent: str,
    ) -> pb.SessionGrant:
        account = await conn.fetchrow(
            f"""SELECT {", ".join("a." + c.strip() for c in accounts.COLUMNS.split(","))}
                  FROM portal_accounts a JOIN patients p ON p.id = a.patient_id
                 WHERE a.id = $1 AND a.realm = $2 AND p.allow_patient_portal""",
            account_id,
            realm,
        )
        if account is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, SIGN_IN_FAILED)
            raise AssertionError("unreachable")
        token, session_id, expires = await sessions.start_after_sign_in(
            conn,
            table="portal_accounts",
            row_id=account["id"],
            lifetime=self.settings.session_lifetime,
            entry=audit.Entry.for_principal(
                principal,
                "auth.patient_sign_in",
                actor_kind="patient",
                actor_id=str(account["id"]),
                patient_id=account["patient_id"],
                detail=f"realm={account['realm']} mfa=totp",
            ),
            trusted_device=trusted_device,
            user_agent=user_agent,
        )
        return self._patient_grant(account, token, session_id, expires)

    @requires(staff=STAFF)
    async def ResetPatientMfa(
        self, request: pb.ResetPatientMfaRequest, context: Context, principal: Principal
    ) -> pb.RemoveTotpResponse:
        patient_id = await parse_patient_id(context, request.patient_id)
        realm = await parse_realm(context, request.realm)
        async with self.pool.acquire() as conn, conn.transaction():
            account = await accounts.get(conn, patient_id, realm)
            if account is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such account")
                raise AssertionError("unreachable")
            removed = await mfa.remove(conn, "patient", account["id"])
            await audit.record(
                conn,
                principal,
                "mfa.reset",
                patient_id=patient_id,
                outcome="ok" if removed else "none",
                detail=f"realm={realm}",
            )
        return pb.RemoveTotpResponse()
