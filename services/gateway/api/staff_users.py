"""Staff users (admin): list, create with a temporary password, disable/enable, role, password
reset, unlock, their live sessions (listed and ended), the roles that require two-factor
sign-in; and every staff member's own password change.

A temporary password is in the answer exactly once; identity keeps only its hash.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api.fields import Text
from services.gateway.api.json_io import timestamp
from services.gateway.api.models import (
    NoBody,
    PasswordChange,
    Request,
    Response,
    Role,
    Time,
    Uuid,
    _at_least_one,
)
from services.gateway.api.operation import Answer, Call, Operation, Reply, path_id
from services.gateway.context import BACKENDS
from services.gateway.staff_roles import ADMIN

BASE = "/api/v1/staff-users"


class NewStaffUser(Request):
    username: Annotated[
        str,
        Text(
            64,
            pattern="^[A-Za-z][A-Za-z0-9._-]{2,63}$",
            message="Use 3 to 64 letters a-z, digits, dots, hyphens and underscores, "
            "starting with a letter.",
        ),
    ]
    display_name: Annotated[str, Text(100, required=True)]
    role: Role


class StaffUserChanges(Request):
    """Only the members sent change; send at least one."""

    model_config = ConfigDict(json_schema_extra=_at_least_one)

    disabled: bool = Field(default=False, description="true ends every session of the user.")
    role: Role = "clinician"

    @model_validator(mode="after")
    def _not_empty(self) -> StaffUserChanges:
        if not self.model_fields_set:
            raise ValueError("Send at least one member to change.")
        return self


class StaffAccount(Response):
    id: Uuid
    username: str
    display_name: str
    role: Role | Literal[""]
    disabled: bool
    must_change_password: bool
    locked_until: Time = Field(description="Set while sign-ins without a device cookie are locked.")
    created_at: Time
    mfa_enrolled: bool = Field(
        default=False, description="Two-factor sign-in is on (listed users only)."
    )


class CreatedStaffUser(StaffAccount):
    temporary_password: str = Field(description="Shown only in this answer.")


class StaffAccountList(Response):
    items: list[StaffAccount]


class StaffSessionInfo(Response):
    """A live session; its token is never shown (identity keeps only its hash)."""

    id: Uuid
    created_at: Time = Field(description="When the user signed in.")
    last_seen_at: Time = Field(description="The session's last use (to within 15 seconds).")
    expires_at: Time = Field(description="Its absolute end (it ends sooner when left idle).")
    address: str = Field(
        description="The client address at sign-in, as the gateway established it (behind "
        "PORTAL_TRUSTED_PROXIES: from X-Forwarded-For); empty for sessions from before it "
        "was recorded."
    )
    user_agent: str = Field(
        description="The client's User-Agent at sign-in (at most 256 characters), to tell "
        "sessions apart; empty when the client sent none or for sessions from before it was "
        "recorded."
    )


class StaffSessionList(Response):
    items: list[StaffSessionInfo]


class StaffMfaPolicy(Response):
    required_roles: list[Role] = Field(
        description="Staff of these roles must use two-factor sign-in: until they set it up, "
        "their sessions admit only the enrolment (403 MFA_ENROLMENT_REQUIRED elsewhere)."
    )


class StaffMfaPolicyChange(Request):
    required_roles: list[Role] = Field(
        max_length=3, description="Every role that requires two-factor sign-in; [] for none."
    )


class TemporaryPassword(Response):
    temporary_password: str = Field(description="Shown only in this answer.")
    expires_at: Time


def account(user: pb.StaffUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": auth.ROLE_NAME.get(user.role, ""),
        "disabled": user.disabled,
        "must_change_password": user.must_change_password,
        "locked_until": timestamp(user.locked_until),
        "created_at": timestamp(user.created_at),
        "mfa_enrolled": user.mfa_enrolled,
    }


def user_id(call: Call[Any, Any]) -> str:
    return path_id(call, "staff_user_id", "staff user")


async def list_users(call: Call[None, None]) -> Reply:
    found = await call.request.app[BACKENDS].identity.ListStaffUsers(
        pb.ListStaffUsersRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(StaffAccountList(items=[StaffAccount(**account(u)) for u in found.items]))


async def create(call: Call[NewStaffUser, None]) -> Reply:
    body = call.body
    user = await call.request.app[BACKENDS].identity.CreateStaffUser(
        pb.CreateStaffUserRequest(
            username=body.username, display_name=body.display_name, role=auth.ROLE_ENUM[body.role]
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    answer = CreatedStaffUser(**account(user), temporary_password=user.temporary_password)
    return Reply(answer, status=201)


async def update(call: Call[StaffUserChanges, None]) -> Reply:
    body, sent = call.body, call.body.model_fields_set
    change = pb.UpdateStaffUserRequest(id=user_id(call))
    if "disabled" in sent:
        change.disabled = body.disabled
    if "role" in sent:
        change.role = auth.ROLE_ENUM[body.role]
    user = await call.request.app[BACKENDS].identity.UpdateStaffUser(
        change, metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(StaffAccount(**account(user)))


async def reset_password(call: Call[NoBody, None]) -> Reply:
    issued = await call.request.app[BACKENDS].identity.ResetStaffPassword(
        pb.ResetStaffPasswordRequest(id=user_id(call)),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(
        TemporaryPassword(
            temporary_password=issued.temporary_password, expires_at=timestamp(issued.expires_at)
        )
    )


async def unlock(call: Call[NoBody, None]) -> Reply:
    await call.request.app[BACKENDS].identity.UnlockStaffUser(
        pb.UnlockStaffUserRequest(id=user_id(call)),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(status=204)


async def reset_mfa(call: Call[None, None]) -> Reply:
    await call.request.app[BACKENDS].identity.ResetStaffMfa(
        pb.ResetStaffMfaRequest(id=user_id(call)),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(status=204)


async def list_sessions(call: Call[None, None]) -> Reply:
    found = await call.request.app[BACKENDS].identity.ListStaffSessions(
        pb.ListStaffSessionsRequest(staff_user_id=user_id(call)),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(
        StaffSessionList(
            items=[
                StaffSessionInfo(
                    id=s.id,
                    created_at=timestamp(s.created_at),
                    last_seen_at=timestamp(s.last_seen_at),
                    expires_at=timestamp(s.expires_at),
                    address=s.address,
                    user_agent=s.user_agent,
                )
                for s in found.items
            ]
        )
    )


async def revoke_session(call: Call[None, None]) -> Reply:
    session_id = path_id(call, "session_id", "session")
    await call.request.app[BACKENDS].identity.RevokeStaffSession(
        pb.RevokeStaffSessionRequest(session_id=session_id, staff_user_id=user_id(call)),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(status=204)


def _policy(found: pb.StaffMfaPolicy) -> StaffMfaPolicy:
    roles = [auth.ROLE_NAME[r] for r in found.required_roles if r in auth.ROLE_NAME]
    return StaffMfaPolicy(required_roles=roles)  # type: ignore[arg-type]


async def get_mfa_policy(call: Call[None, None]) -> Reply:
    found = await call.request.app[BACKENDS].identity.GetStaffMfaPolicy(
        pb.GetStaffMfaPolicyRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(_policy(found))


async def set_mfa_policy(call: Call[StaffMfaPolicyChange, None]) -> Reply:
    found = await call.request.app[BACKENDS].identity.SetStaffMfaPolicy(
        pb.SetStaffMfaPolicyRequest(
            required_roles=[auth.ROLE_ENUM[r] for r in call.body.required_roles]
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(_policy(found))


async def change_password(call: Call[PasswordChange, None]) -> Reply:
    await call.request.app[BACKENDS].identity.ChangeStaffPassword(
        pb.ChangePasswordRequest(
            current_password=call.body.current_password, new_password=call.body.new_password
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    # identity ended every session of the user (this token's too): sign in again.
    return Reply(status=204)


ONE = BASE + "/{staff_user_id}"
MFA_POLICY = "/api/v1/staff-mfa-policy"


def operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            BASE,
            list_users,
            operation_id="listStaffUsers",
            summary="Every staff user (admin)",
            tag="staff-users",
            security="staff",
            answers=(Answer(200, "The staff users.", StaffAccountList),),
            roles=ADMIN,
        ),
        Operation(
            "POST",
            BASE,
            create,
            operation_id="createStaffUser",
            summary="A new staff user with a temporary password to change at first sign-in",
            tag="staff-users",
            security="staff",
            body=NewStaffUser,
            answers=(
                Answer(201, "Created; the password is in this answer only.", CreatedStaffUser),
            ),
            roles=ADMIN,
        ),
        Operation(
            "PATCH",
            ONE,
            update,
            operation_id="updateStaffUser",
            summary="Disable/enable (disabling ends their sessions) or change the role",
            tag="staff-users",
            security="staff",
            body=StaffUserChanges,
            answers=(Answer(200, "The changed staff user.", StaffAccount),),
            problems=(409,),
            roles=ADMIN,
        ),
        Operation(
            "POST",
            ONE + "/password-reset",
            reset_password,
            operation_id="resetStaffPassword",
            summary="A new temporary password; ends the user's sessions and unlocks",
            tag="staff-users",
            security="staff",
            body=NoBody,
            body_required=False,
            answers=(
                Answer(200, "Reset; the password is in this answer only.", TemporaryPassword),
            ),
            roles=ADMIN,
        ),
        Operation(
            "POST",
            ONE + "/unlock",
            unlock,
            operation_id="unlockStaffUser",
            summary="Clear the user's failed sign-ins (every device's too)",
            tag="staff-users",
            security="staff",
            body=NoBody,
            body_required=False,
            answers=(Answer(204, "Unlocked."),),
            roles=ADMIN,
        ),
        Operation(
            "DELETE",
            ONE + "/mfa",
            reset_mfa,
            operation_id="resetStaffUserMfa",
            summary="Remove the staff user's second factor (a lost phone; admin, audited)",
            description="If their role requires two-factor sign-in, their sessions admit only "
            "enrolment again until they set it up anew.",
            tag="staff-users",
            security="staff",
            answers=(Answer(204, "Removed."),),
            roles=ADMIN,
        ),
        Operation(
            "GET",
            ONE + "/sessions",
            list_sessions,
            operation_id="listStaffUserSessions",
            summary="The staff user's live sessions, most recently used first (admin)",
            tag="staff-users",
            security="staff",
            answers=(Answer(200, "The live sessions (no tokens).", StaffSessionList),),
            roles=ADMIN,
        ),
        Operation(
            "DELETE",
            ONE + "/sessions/{session_id}",
            revoke_session,
            operation_id="revokeStaffUserSession",
            summary="End one of the staff user's sessions at once (admin, audited)",
            tag="staff-users",
            security="staff",
            answers=(Answer(204, "Ended."),),
            roles=ADMIN,
        ),
        Operation(
            "GET",
            MFA_POLICY,
            get_mfa_policy,
            operation_id="getStaffMfaPolicy",
            summary="The staff roles that require two-factor sign-in (admin)",
            tag="staff-users",
            security="staff",
            answers=(Answer(200, "The setting.", StaffMfaPolicy),),
            roles=ADMIN,
        ),
        Operation(
            "PUT",
            MFA_POLICY,
            set_mfa_policy,
            operation_id="setStaffMfaPolicy",
            summary="Set the staff roles that require two-factor sign-in (admin, audited)",
            tag="staff-users",
            security="staff",
            body=StaffMfaPolicyChange,
            answers=(Answer(200, "The setting now.", StaffMfaPolicy),),
            roles=ADMIN,
        ),
        Operation(
            "POST",
            "/api/v1/staff/password",
            change_password,
            operation_id="changeStaffPassword",
            summary="Change your own password; ends your sessions (sign in again)",
            tag="staff",
            security="staff",
            password_change=True,
            body=PasswordChange,
            answers=(Answer(204, "Changed."),),
        ),
    ]
