"""SchedulingService over gRPC: every method checks the principal first (@requires).

Patients act only for themselves: their patient id comes from the principal, never from the
request, and another patient's appointment is NOT_FOUND. Staff book only for patients identity
has registered, as scheduling has heard of them (patients.py). Booking relies on PostgreSQL's
exclusion constraint, not on a prior check, so no concurrency can double-book a provider; the
conflict answers SLOT_TAKEN with fresh alternatives.
"""

from __future__ import annotations

import calendar
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import scheduling_pb2 as events
from portal.scheduling.v1 import scheduling_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime import text
from services.runtime.db import Conn
from services.runtime.errors import (
    FieldErrors,
    abort_invalid,
    abort_not_found,
    abort_precondition,
)
from services.runtime.outbox import emit
from services.runtime.principal import Principal, PrincipalVerifier, requires
from services.scheduling import (
    access,
    appointments,
    availability,
    calendars,
    catalog,
    convert,
    roles,
    work_queue,
)
from services.scheduling.calendars import TypeRules
from services.scheduling.problems import (
    SLOT_TAKEN,
    SLOT_UNAVAILABLE,
    abort_patient_busy,
    abort_slot,
)
from services.scheduling.settings import SchedulingSettings

Context = grpc.aio.ServicerContext[Any, Any]
STAFF = True  # any staff role
DEFAULT_SLOTS, MAX_SLOTS = 20, 200
ALTERNATIVES = 6
DEFAULT_LIST, MAX_LIST = 500, 1000
KEY_LIMIT = 200
STAFF_STATUSES = {
    pb.APPOINTMENT_STATUS_ARRIVED: "arrived",
    pb.APPOINTMENT_STATUS_FULFILLED: "fulfilled",
    pb.APPOINTMENT_STATUS_NOSHOW: "noshow",
}
# SetAppointmentStatus: which current statuses each target may follow.
STATUS_FROM = {
    "arrived": {"booked", "checked-in"},
    "fulfilled": {"booked", "arrived", "checked-in"},
    "noshow": {"booked"},
}


def transition_refused(current: str, wanted: str) -> str:
    """The sentence refusing SetAppointmentStatus, in words ("no-show", not "noshow")."""
    label = "no-show" if current == "noshow" else current
    article = "An" if label[0] in "aeiou" else "A"
    target = "a no-show" if wanted == "noshow" else wanted
    return f"{article} {label} appointment cannot become {target}."


def now_epoch() -> int:
    return int(time.time())


def epoch(ts: Timestamp) -> int:
    return int(ts.seconds)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def parse_id(context: Context, raw: str, field: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        await abort_invalid(context, {field: [f"{what} id is not valid."]})


def one(row: asyncpg.Record | None) -> asyncpg.Record:
    """A row the statement always returns (INSERT ... RETURNING, a row just written)."""
    if row is None:
        raise LookupError("expected a row")
    return row


class SchedulingServicer(pb_grpc.SchedulingServiceServicer):
    def __init__(
        self, pool: asyncpg.Pool, principals: PrincipalVerifier, settings: SchedulingSettings
    ) -> None:
        self.pool = pool
        self.principals = principals
        self.tz = settings.time_zone
        self.hours = calendars.HoursCache()

    # ------------------------------------------------------------------ providers

    async def _provider_write(
        self, context: Context, taken: str, statement: str, *args: object
    ) -> pb.Provider:
        """One statement returning the provider's row; an active namesake is NAME_TAKEN (the
        unique index of migration 0011), no row NOT_FOUND."""
        try:
            row = await self.pool.fetchrow(statement, *args)
        except asyncpg.UniqueViolationError:
            await abort_precondition(context, "NAME_TAKEN", taken, subject="display_name")
        if row is None:
            await abort_not_found(context, "provider")
        return convert.provider(row)

    async def _display_name(self, context: Context, raw: str) -> str:
        name = raw.strip()
        problem = catalog.name_problem(name, "Display name")
        if problem:
            await abort_invalid(context, {"display_name": [problem]})
        return name

    @requires(staff=roles.PRACTICE_SETUP)
    async def CreateProvider(
        self, request: pb.CreateProviderRequest, context: Context, principal: Principal
    ) -> pb.Provider:
        name = await self._display_name(context, request.display_name)
        return await self._provider_write(
            context,
            catalog.name_taken(name),
            """INSERT INTO providers (id, display_name) VALUES ($1, $2)
               RETURNING id, display_name, active""",
            uuid.uuid4(),
            name,
        )

    @requires(staff=roles.PRACTICE_SETUP)
    async def RenameProvider(
        self, request: pb.RenameProviderRequest, context: Context, principal: Principal
    ) -> pb.Provider:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        name = await self._display_name(context, request.display_name)
        return await self._provider_write(
            context,
            catalog.name_taken(name),
            """UPDATE providers SET display_name = $2, updated_at = now() WHERE id = $1
               RETURNING id, display_name, active""",
            provider_id,
            name,
        )

    async def _set_active(self, context: Context, raw_id: str, active: bool) -> pb.Provider:
        provider_id = await parse_id(context, raw_id, "provider_id", "Provider")
        return await self._provider_write(
            context,
            catalog.REACTIVATE_TAKEN,
            """UPDATE providers SET active = $2,
                   updated_at = CASE WHEN active = $2 THEN updated_at ELSE now() END
               WHERE id = $1 RETURNING id, display_name, active""",
            provider_id,
            active,
        )

    @requires(staff=roles.PRACTICE_SETUP)
    async def DeactivateProvider(
        self, request: pb.DeactivateProviderRequest, context: Context, principal: Principal
    ) -> pb.Provider:
        return await self._set_active(context, request.provider_id, False)

    @requires(staff=roles.PRACTICE_SETUP)
    async def ReactivateProvider(
        self, request: pb.ReactivateProviderRequest, context: Context, principal: Principal
    ) -> pb.Provider:
        return await self._set_active(context, request.provider_id, True)

    @requires(staff=STAFF, patient=True)
    async def ListProviders(
        self, request: pb.ListProvidersRequest, context: Context, principal: Principal
    ) -> pb.ListProvidersResponse:
        everyone = request.include_inactive and not principal.is_patient
        rows = await self.pool.fetch(
            """SELECT id, display_name, active FROM providers WHERE active OR $1
               ORDER BY display_name, id""",
            everyone,
        )
        return pb.ListProvidersResponse(items=[convert.provider(r) for r in rows])

    # ------------------------------------------------------------------ working hours

    async def _provider_exists(self, conn: Conn, context: Context, provider_id: uuid.UUID) -> None:
        if not await conn.fetchval("SELECT true FROM providers WHERE id = $1", provider_id):
            await abort_not_found(context, "provider")

    async def _working_hours(self, conn: Conn, provider_id: uuid.UUID) -> pb.WorkingHours:
        hours = pb.WorkingHours(provider_id=str(provider_id), time_zone=self.tz.key)
        for r in await conn.fetch(
            """SELECT weekday, start_minute, end_minute FROM working_hours WHERE provider_id = $1
               ORDER BY weekday, start_minute""",
            provider_id,
        ):
            hours.weekly.append(
                pb.WeeklyRange(
                    weekday=r["weekday"],  # ISO weekday = enum number
                    start=convert.clock(r["start_minute"]),
                    end=convert.clock(r["end_minute"]),
                )
            )
        today = availability.local_date(now_epoch(), self.tz)
        by_day: dict[str, pb.DateOverride] = {}
        for r in await conn.fetch(
            """SELECT o.day, r.start_minute, r.end_minute
               FROM date_overrides o LEFT JOIN date_override_ranges r USING (provider_id, day)
               WHERE o.provider_id = $1 AND o.day >= $2 ORDER BY o.day, r.start_minute""",
            provider_id,
            today,
        ):
            day = r["day"].isoformat()
            found = by_day.setdefault(day, pb.DateOverride(provider_id=str(provider_id), date=day))
            if r["start_minute"] is not None:
                found.ranges.append(
                    pb.TimeRange(
                        start=convert.clock(r["start_minute"]), end=convert.clock(r["end_minute"])
                    )
                )
        hours.date_overrides.extend(by_day.values())
        return hours

    @requires(staff=STAFF)
    async def GetWorkingHours(
        self, request: pb.GetWorkingHoursRequest, context: Context, principal: Principal
    ) -> pb.WorkingHours:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        async with self.pool.acquire() as conn:
            await self._provider_exists(conn, context, provider_id)
            return await self._working_hours(conn, provider_id)

    @requires(staff=roles.AVAILABILITY)
    async def ReplaceWorkingHours(
        self, request: pb.ReplaceWorkingHoursRequest, context: Context, principal: Principal
    ) -> pb.WorkingHours:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        errors: FieldErrors = {}
        by_day: dict[int, list[tuple[int, int]]] = {}
        for i, item in enumerate(request.weekly):
            if not 1 <= item.weekday <= 7:
                errors.setdefault(f"weekly[{i}].weekday", []).append("Choose a day of the week.")
            found = catalog.clock_range(item, f"weekly[{i}]", errors)
            if found is not None:
                by_day.setdefault(item.weekday, []).append(found)
        for weekday, parsed in by_day.items():
            if catalog.overlapping(parsed):
                day = calendar.day_name[weekday - 1] if 1 <= weekday <= 7 else "that day"
                errors.setdefault("weekly", []).append(f"The hours of {day} overlap.")
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._provider_exists(conn, context, provider_id)
            await conn.execute("DELETE FROM working_hours WHERE provider_id = $1", provider_id)
            await conn.executemany(
                """INSERT INTO working_hours (provider_id, weekday, start_minute, end_minute)
                   VALUES ($1, $2, $3, $4)""",
                [(provider_id, d, s, e) for d, parsed in by_day.items() for s, e in parsed],
            )
            return await self._working_hours(conn, provider_id)

    @requires(staff=roles.AVAILABILITY)
    async def SetDateOverride(
        self, request: pb.SetDateOverrideRequest, context: Context, principal: Principal
    ) -> pb.DateOverride:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        errors: FieldErrors = {}
        day = catalog.parse_date(request.date)
        if day is None:
            errors["date"] = ["Use a date such as 2026-03-29."]
        parsed = catalog.ranges(request.ranges, "ranges", errors)
        if catalog.overlapping(parsed):
            errors.setdefault("ranges", []).append("The hours overlap.")
        if errors or day is None:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._provider_exists(conn, context, provider_id)
            await conn.execute(
                "DELETE FROM date_overrides WHERE provider_id = $1 AND day = $2", provider_id, day
            )
            await conn.execute(
                "INSERT INTO date_overrides (provider_id, day) VALUES ($1, $2)", provider_id, day
            )
            await conn.executemany(
                """INSERT INTO date_override_ranges (provider_id, day, start_minute, end_minute)
                   VALUES ($1, $2, $3, $4)""",
                [(provider_id, day, s, e) for s, e in parsed],
            )
        return pb.DateOverride(
            provider_id=str(provider_id),
            date=day.isoformat(),
            ranges=[
                pb.TimeRange(start=convert.clock(s), end=convert.clock(e))
                for s, e in sorted(parsed)
            ],
        )

    @requires(staff=roles.AVAILABILITY)
    async def RemoveDateOverride(
        self, request: pb.RemoveDateOverrideRequest, context: Context, principal: Principal
    ) -> pb.RemoveDateOverrideResponse:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        day = catalog.parse_date(request.date)
        if day is None:
            await abort_invalid(context, {"date": ["Use a date such as 2026-03-29."]})
        await self.pool.execute(
            "DELETE FROM date_overrides WHERE provider_id = $1 AND day = $2", provider_id, day
        )
        return pb.RemoveDateOverrideResponse()

    @requires(staff=roles.AVAILABILITY)
    async def AddTimeOff(
        self, request: pb.AddTimeOffRequest, context: Context, principal: Principal
    ) -> pb.TimeOff:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        errors: FieldErrors = {}
        if not request.HasField("start"):
            errors["start"] = ["Start is required."]
        if not request.HasField("end"):
            errors["end"] = ["End is required."]
        elif request.HasField("start") and epoch(request.end) <= epoch(request.start):
            errors["end"] = ["End must be after start."]
        catalog.check_instants(request, errors, "start", "end")
        problem = catalog.reason_problem(request.reason)
        if problem:
            errors["reason"] = [problem]
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn:
            await self._provider_exists(conn, context, provider_id)
            row = await conn.fetchrow(
                """INSERT INTO time_off (id, provider_id, during, reason) VALUES ($1, $2, $3, $4)
                   RETURNING id, provider_id, during, reason""",
                uuid.uuid4(),
                provider_id,
                asyncpg.Range(
                    convert.from_timestamp(request.start), convert.from_timestamp(request.end)
                ),
                request.reason.strip(),
            )
        return convert.time_off(one(row))

    @requires(staff=STAFF)
    async def ListTimeOff(
        self, request: pb.ListTimeOffRequest, context: Context, principal: Principal
    ) -> pb.ListTimeOffResponse:
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        lo = (
            convert.from_timestamp(getattr(request, "from"))
            if request.HasField("from")
            else at(now_epoch())
        )
        hi = convert.from_timestamp(request.to) if request.HasField("to") else None
        rows = await self.pool.fetch(
            """SELECT id, provider_id, during, reason FROM time_off
               WHERE provider_id = $1 AND during && tstzrange($2, $3)
               ORDER BY lower(during)""",
            provider_id,
            lo,
            hi,
        )
        return pb.ListTimeOffResponse(items=[convert.time_off(r) for r in rows])

    @requires(staff=roles.AVAILABILITY)
    async def RemoveTimeOff(
        self, request: pb.RemoveTimeOffRequest, context: Context, principal: Principal
    ) -> pb.RemoveTimeOffResponse:
        time_off_id = await parse_id(context, request.time_off_id, "time_off_id", "Time off")
        deleted = await self.pool.fetchval(
            "DELETE FROM time_off WHERE id = $1 RETURNING true", time_off_id
        )
        if not deleted:
            await abort_not_found(context, "time off")
        return pb.RemoveTimeOffResponse()

    # ------------------------------------------------------------------ appointment types

    async def _type_message(
        self, conn: Conn, type_id: uuid.UUID, *, active_only: bool = False
    ) -> pb.AppointmentType:
        row = await conn.fetchrow(
            f"SELECT {calendars.TYPE_COLUMNS} FROM appointment_types WHERE id = $1", type_id
        )
        providers = await calendars.offering_providers(conn, type_id) if active_only else None
        ids = await conn.fetch(
            """SELECT provider_id FROM appointment_type_providers WHERE appointment_type_id = $1
               ORDER BY provider_id""",
            type_id,
        )
        provider_ids = [str(r["provider_id"]) for r in ids]
        if providers is not None:
            provider_ids = [p for p in provider_ids if p in providers]
        return convert.appointment_type(one(row), provider_ids)

    async def _save_type(
        self,
        context: Context,
        fields: pb.AppointmentTypeFields,
        type_id: uuid.UUID | None,
    ) -> pb.AppointmentType:
        values, errors = catalog.type_values(fields)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn:
            known = await conn.fetchval(
                "SELECT count(*) FROM providers WHERE id = ANY($1::uuid[])", values.provider_ids
            )
            if known != len(values.provider_ids):
                await abort_invalid(context, {"provider_ids": ["Unknown provider."]})
            try:
                async with conn.transaction():
                    if type_id is None:
                        type_id = uuid.uuid4()
                        await conn.execute(
                            """INSERT INTO appointment_types (id, name, duration_minutes,
                                   slot_interval_minutes, buffer_before_minutes,
                                   buffer_after_minutes, minimum_notice_minutes, horizon_days,
                                   cancellation_notice_minutes, bookable_online)
                               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                            type_id,
                            *values.row(),
                        )
                    else:
                        updated = await conn.fetchval(
                            """UPDATE appointment_types SET name = $2, duration_minutes = $3,
                                   slot_interval_minutes = $4, buffer_before_minutes = $5,
                                   buffer_after_minutes = $6, minimum_notice_minutes = $7,
                                   horizon_days = $8, cancellation_notice_minutes = $9,
                                   bookable_online = $10, updated_at = now()
                               WHERE id = $1 RETURNING true""",
                            type_id,
                            *values.row(),
                        )
                        if not updated:
                            await abort_not_found(context, "appointment type")
                        await conn.execute(
                            "DELETE FROM appointment_type_providers WHERE appointment_type_id = $1",
                            type_id,
                        )
                    await conn.executemany(
                        """INSERT INTO appointment_type_providers
                               (appointment_type_id, provider_id) VALUES ($1, $2)""",
                        [(type_id, p) for p in values.provider_ids],
                    )
            except asyncpg.UniqueViolationError:
                await abort_invalid(
                    context, {"name": ["An appointment type with this name already exists."]}
                )
            return await self._type_message(conn, type_id)

    @requires(staff=roles.PRACTICE_SETUP)
    async def CreateAppointmentType(
        self, request: pb.CreateAppointmentTypeRequest, context: Context, principal: Principal
    ) -> pb.AppointmentType:
        return await self._save_type(context, request.fields, None)

    @requires(staff=roles.PRACTICE_SETUP)
    async def UpdateAppointmentType(
        self, request: pb.UpdateAppointmentTypeRequest, context: Context, principal: Principal
    ) -> pb.AppointmentType:
        type_id = await parse_id(
            context, request.appointment_type_id, "appointment_type_id", "Appointment type"
        )
        return await self._save_type(context, request.fields, type_id)

    @requires(staff=STAFF, patient=True)
    async def ListAppointmentTypes(
        self, request: pb.ListAppointmentTypesRequest, context: Context, principal: Principal
    ) -> pb.ListAppointmentTypesResponse:
        online_only = request.bookable_online_only or principal.is_patient
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT {calendars.TYPE_COLUMNS} FROM appointment_types
                    WHERE bookable_online OR NOT $1 ORDER BY name""",
                online_only,
            )
            offered = await conn.fetch(
                """SELECT o.appointment_type_id, o.provider_id, p.active
                   FROM appointment_type_providers o JOIN providers p ON p.id = o.provider_id
                   ORDER BY o.provider_id"""
            )
        by_type: dict[uuid.UUID, list[str]] = {}
        for r in offered:
            if r["active"] or not principal.is_patient:
                by_type.setdefault(r["appointment_type_id"], []).append(str(r["provider_id"]))
        items = [convert.appointment_type(r, by_type.get(r["id"], [])) for r in rows]
        if principal.is_patient:  # nothing to book without an active provider
            items = [t for t in items if t.provider_ids]
        return pb.ListAppointmentTypesResponse(items=items)

    # ------------------------------------------------------------------ availability

    async def _bookable_type(
        self, conn: Conn, context: Context, principal: Principal, raw: str
    ) -> TypeRules:
        type_id = await parse_id(context, raw, "appointment_type_id", "Appointment type")
        kind = await calendars.load_type(conn, type_id)
        if kind is None or (principal.is_patient and not kind.bookable_online):
            await abort_not_found(context, "appointment type")
        return kind

    async def _slots(
        self,
        conn: Conn,
        kind: TypeRules,
        providers: dict[str, calendars.Offering],
        *,
        start_from: int,
        limit: int,
        after: tuple[int, str] | None = None,
        patient: uuid.UUID | None = None,
        moving: uuid.UUID | None = None,
    ) -> list[pb.Slot]:
        """Free slots; with a `patient`, none overlapping their own appointments (but `moving`)."""
        earliest, latest = kind.window(now_epoch())
        own: list[availability.Interval] = []
        if patient is not None:
            own = await calendars.own_appointments(
                conn,
                patient,
                max(earliest, start_from) - kind.rules.duration,
                latest + kind.rules.duration,
                besides=moving,
            )
        found = await calendars.search(
            conn,
            self.tz,
            kind,
            {p: offered.hours_version for p, offered in providers.items()},
            self.hours,
            earliest=max(earliest, start_from),
            latest=latest,
            limit=limit,
            after=after,
            patient_busy=own,
        )
        return [
            pb.Slot(
                provider_id=s.provider_id,
                provider_name=providers[s.provider_id].name,
                start=convert.timestamp(s.start),
                end=convert.timestamp(s.end),
            )
            for s in found
        ]

    async def _alternatives(
        self,
        conn: Conn,
        kind: TypeRules,
        start: int,
        principal: Principal,
        moving: uuid.UUID | None = None,
    ) -> list[pb.Slot]:
        """Fresh times from the requested day on, across every provider offering the type (for a
        patient, clear of their own appointments but `moving`).

        Read on the caller's connection: taking a second one could wait forever when every
        pooled connection is held by a booking doing the same.
        """
        day = availability.local_date(start, self.tz)
        providers = await calendars.offering_providers(conn, kind.id)
        return await self._slots(
            conn,
            kind,
            providers,
            start_from=availability.instant(day, 0, self.tz),
            limit=ALTERNATIVES,
            patient=uuid.UUID(principal.subject) if principal.is_patient else None,
            moving=moving,
        )

    @requires(staff=STAFF, patient=True)
    async def FindAvailability(
        self, request: pb.FindAvailabilityRequest, context: Context, principal: Principal
    ) -> pb.FindAvailabilityResponse:
        errors: FieldErrors = {}
        limit = request.limit or DEFAULT_SLOTS
        if not 1 <= limit <= MAX_SLOTS:
            errors["limit"] = [f"Limit must be between 1 and {MAX_SLOTS}."]
        after = parse_page_token(request.page_token)
        if request.page_token and after is None:
            errors["page_token"] = ["Page token is not valid."]
        catalog.check_instants(request, errors, "from")
        if errors:
            await abort_invalid(context, errors)
        provider_id = (
            await parse_id(context, request.provider_id, "provider_id", "Provider")
            if request.provider_id
            else None
        )
        moving = (
            await parse_id(
                context, request.moving_appointment_id, "moving_appointment_id", "Appointment"
            )
            if request.moving_appointment_id
            else None
        )
        # Whose own appointments the times keep clear of: a patient's always, staff's on asking.
        raw_patient = principal.subject if principal.is_patient else request.patient_id
        patient_id = (
            await parse_id(context, raw_patient, "patient_id", "Patient") if raw_patient else None
        )
        start_from = epoch(getattr(request, "from")) if request.HasField("from") else 0
        async with self.pool.acquire() as conn:
            kind = await self._bookable_type(conn, context, principal, request.appointment_type_id)
            providers = await calendars.offering_providers(conn, kind.id, provider_id)
            if provider_id and not providers:  # no free times, or a wrong id?
                await self._provider_exists(conn, context, provider_id)
            slots = await self._slots(
                conn,
                kind,
                providers,
                start_from=start_from,
                limit=limit,
                after=after,
                patient=patient_id,
                moving=moving,
            )
            if patient_id is not None and not principal.is_patient:
                # Their appointments' times were read to leave them out.
                await access.record(conn, principal, "appointment.availability", [patient_id])
        token = ""
        if len(slots) == limit:
            token = f"{slots[-1].start.seconds}:{slots[-1].provider_id}"
        return pb.FindAvailabilityResponse(
            slots=slots, next_page_token=token, time_zone=self.tz.key
        )

    # ------------------------------------------------------------------ appointments

    async def _check_time(
        self,
        conn: Conn,
        context: Context,
        principal: Principal,
        kind: TypeRules,
        provider_id: uuid.UUID,
        start: int,
        moving: uuid.UUID | None = None,
    ) -> str:
        """The provider offers the type and (for patients) `start` is an offered slot; returns
        the provider's name."""
        found = await calendars.booking_context(conn, self.tz, kind.id, provider_id, start)
        return await self._check_context(conn, context, principal, kind, found, start, moving)

    async def _check_context(
        self,
        conn: Conn,
        context: Context,
        principal: Principal,
        kind: TypeRules,
        found: calendars.BookingContext,
        start: int,
        moving: uuid.UUID | None = None,
    ) -> str:
        """_check_time on what booking_context read.

        Staff may book any time inside the provider's hours and clear of time off (off the grid,
        inside the minimum notice); the database alone decides whether the time is still free.
        """
        if found.provider_name is None or not (found.offered and found.provider_active):
            if found.provider_name is None or (principal.is_patient and not found.provider_active):
                await abort_not_found(context, "provider")
            if not found.provider_active:
                await abort_precondition(
                    context, "PROVIDER_INACTIVE", "This provider takes no new appointments."
                )
            await abort_precondition(
                context, "NOT_OFFERED", "This provider does not offer this appointment type."
            )
        cal = found.calendar
        if principal.is_patient:
            earliest, latest = kind.window(now_epoch())
            ok = availability.offers(
                cal, kind.rules, self.tz, start, earliest=earliest, latest=latest
            )
        else:
            ok = availability.fits(cal, kind.rules, self.tz, start)
        if not ok:
            alternatives = await self._alternatives(conn, kind, start, principal, moving)
            await abort_slot(context, SLOT_UNAVAILABLE, alternatives)
        return found.provider_name

    def _blocked(
        self, kind: TypeRules, start: int
    ) -> tuple[datetime, datetime, asyncpg.Range[datetime]]:
        lo, hi = kind.rules.blocked(start)
        return at(start), at(start + kind.rules.duration), asyncpg.Range(at(lo), at(hi))

    async def _appointment(
        self, conn: Conn, context: Context, principal: Principal, raw: str, *, lock: bool = False
    ) -> asyncpg.Record:
        appointment_id = await parse_id(context, raw, "appointment_id", "Appointment")
        row = await appointments.get(conn, appointment_id, lock=lock)
        if row is None or (principal.is_patient and str(row["patient_id"]) != principal.subject):
            await abort_not_found(context, "appointment")
        return row

    async def _emit(
        self,
        conn: Conn,
        event: str,
        row: asyncpg.Record,
        principal: Principal,
        previous: asyncpg.Record | None = None,
    ) -> None:
        payload = self._event(row, principal)
        if previous is not None:
            payload.previous_status = previous["status"]
            if event == "rescheduled":
                payload.previous_start.CopyFrom(convert.timestamp(previous["starts_at"]))
                payload.previous_end.CopyFrom(convert.timestamp(previous["ends_at"]))
                payload.previous_provider_id = str(previous["provider_id"])
        await emit(conn, f"portal.scheduling.appointment.{event}", str(row["id"]), payload)

    def _event(
        self, row: asyncpg.Record | Mapping[str, Any], principal: Principal
    ) -> events.AppointmentChanged:
        return events.AppointmentChanged(
            appointment_id=str(row["id"]),
            patient_id=str(row["patient_id"]),
            provider_id=str(row["provider_id"]),
            appointment_type_id=str(row["appointment_type_id"]),
            appointment_type_name=row["appointment_type_name"],
            start=convert.timestamp(row["starts_at"]),
            end=convert.timestamp(row["ends_at"]),
            status=row["status"],
            occurred_at=convert.timestamp(now_epoch()),
            actor_kind=principal.kind,
            actor_id=principal.subject,
        )

    @requires(staff=STAFF, patient=True)
    async def BookAppointment(
        self, request: pb.BookAppointmentRequest, context: Context, principal: Principal
    ) -> pb.Appointment:
        # A patient books for themselves, whatever the request says.
        raw_patient = principal.subject if principal.is_patient else request.patient_id
        patient_id = await parse_id(context, raw_patient, "patient_id", "Patient")
        provider_id = await parse_id(context, request.provider_id, "provider_id", "Provider")
        key = request.idempotency_key.strip()
        errors: FieldErrors = {}
        if not request.HasField("start"):
            errors["start"] = ["Choose a time."]
        catalog.check_instants(request, errors, "start")
        problem = text.problem(key)
        if len(key) > KEY_LIMIT:
            problem = f"Idempotency key must be at most {KEY_LIMIT} characters."
        if problem:
            errors["idempotency_key"] = [problem]
        if errors:
            await abort_invalid(context, errors)
        start = epoch(request.start)
        caller = f"{principal.kind}:{principal.subject}"
        digest = appointments.request_hash(
            patient_id, request.appointment_type_id, provider_id, start
        )
        type_id = await parse_id(
            context, request.appointment_type_id, "appointment_type_id", "Appointment type"
        )
        # Staff book only for patients scheduling knows (the patients projection); a patient's
        # signed session proves identity knows them, so theirs is not looked up.
        asked = None if principal.is_patient else patient_id
        async with self.pool.acquire() as conn:
            # The type, provider, calendar, stored key and patient in one round trip; then one
            # write.
            found = await calendars.booking_context(
                conn, self.tz, type_id, provider_id, start, caller=caller, key=key, patient_id=asked
            )
            if found.key is not None and (
                replay := await self._replay(conn, context, principal, caller, key, digest)
            ):
                return replay
            if asked is not None and not found.patient_known:
                # Also a patient registered moments ago whose event has not arrived yet: the
                # gateway tells that case apart by asking identity (a 503 to retry).
                await abort_not_found(context, "patient")
            kind = found.kind
            if kind is None or (principal.is_patient and not kind.bookable_online):
                await abort_not_found(context, "appointment type")
            provider_name = await self._check_context(conn, context, principal, kind, found, start)
            starts, ends, blocked = self._blocked(kind, start)
            booking = appointments.Booking(
                uuid.uuid4(), patient_id, provider_id, kind.id, starts, ends, blocked
            )
            # Everything the answer and the event hold is known before the write, so the
            # write is one statement (appointments.BOOK).
            row = {
                "id": booking.appointment_id,
                "patient_id": patient_id,
                "provider_id": provider_id,
                "appointment_type_id": kind.id,
                "appointment_type_name": kind.name,
                "provider_name": provider_name,
                "starts_at": starts,
                "ends_at": ends,
                "status": "booked",
                "cancellation_reason": "",
                "cancellation_notice_minutes": kind.cancellation_notice_minutes,
            }
            try:
                written = await appointments.book(
                    conn, booking, principal, self._event(row, principal), key=key, digest=digest
                )
            except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
                written = None  # the key is stored (or an unlucky lock order): nothing written
            if written is None:
                # A concurrent request with this key committed first: answer as it did.
                if key and (
                    replay := await self._replay(conn, context, principal, caller, key, digest)
                ):
                    return replay
                # Refused by the patient's appointments or by the provider's?
                if await calendars.own_appointments(
                    conn, patient_id, start, start + kind.rules.duration
                ):
                    await abort_patient_busy(context, principal)
                await abort_slot(
                    context, SLOT_TAKEN, await self._alternatives(conn, kind, start, principal)
                )
        return convert.appointment({**row, **written})

    async def _replay(
        self, conn: Conn, context: Context, principal: Principal, caller: str, key: str, digest: str
    ) -> pb.Appointment | None:
        found = await appointments.find_key(conn, caller, key)
        if found is None:
            return None
        if found["request_hash"] != digest:
            await abort_precondition(
                context,
                "IDEMPOTENCY_KEY_REUSED",
                "This idempotency key was used for a different booking.",
                subject="idempotency_key",
            )
        row = one(await appointments.get(conn, found["appointment_id"]))
        await access.record(conn, principal, "appointment.read", [row["patient_id"]], row["id"])
        return convert.appointment(row)

    @requires(staff=STAFF, patient=True)
    async def GetAppointment(
        self, request: pb.GetAppointmentRequest, context: Context, principal: Principal
    ) -> pb.Appointment:
        async with self.pool.acquire() as conn:
            row = await self._appointment(conn, context, principal, request.appointment_id)
            await access.record(conn, principal, "appointment.read", [row["patient_id"]], row["id"])
        return convert.appointment(row)

    @requires(staff=STAFF, patient=True)
    async def ListAppointments(
        self, request: pb.ListAppointmentsRequest, context: Context, principal: Principal
    ) -> pb.ListAppointmentsResponse:
        errors: FieldErrors = {}
        limit = request.limit or DEFAULT_LIST
        if not 1 <= limit <= MAX_LIST:
            errors["limit"] = [f"Limit must be between 1 and {MAX_LIST}."]
        statuses = [convert.STATUS_NAMES.get(s) for s in request.statuses]
        if None in statuses:
            errors["statuses"] = ["Unknown status."]
        if errors:
            await abort_invalid(context, errors)
        raw_patient = principal.subject if principal.is_patient else request.patient_id
        patient_id = (
            await parse_id(context, raw_patient, "patient_id", "Patient") if raw_patient else None
        )
        provider_id = (
            await parse_id(context, request.provider_id, "provider_id", "Provider")
            if request.provider_id
            else None
        )
        lo = convert.from_timestamp(getattr(request, "from")) if request.HasField("from") else None
        hi = convert.from_timestamp(request.to) if request.HasField("to") else None
        if lo is not None and hi is not None and hi <= lo:
            await abort_invalid(context, {"to": ["Must be after from."]})
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""{appointments.SELECT}
                    WHERE ($1::uuid IS NULL OR a.patient_id = $1)
                      AND ($2::uuid IS NULL OR a.provider_id = $2)
                      AND ($3::timestamptz IS NULL OR a.ends_at > $3)
                      AND ($4::timestamptz IS NULL OR a.starts_at < $4)
                      AND (cardinality($5::text[]) = 0 OR a.status = ANY($5::text[]))
                    ORDER BY a.starts_at, a.id LIMIT $6""",
                patient_id,
                provider_id,
                lo,
                hi,
                statuses,
                limit,
            )
            if provider_id and not rows:  # an empty calendar, or a wrong id?
                await self._provider_exists(conn, context, provider_id)
            seen = [r["patient_id"] for r in rows] + ([patient_id] if patient_id else [])
            await access.record(conn, principal, "appointment.list", seen)
        return pb.ListAppointmentsResponse(
            items=[convert.appointment(r) for r in rows], time_zone=self.tz.key
        )

    async def _patient_may_change(
        self, context: Context, principal: Principal, row: asyncpg.Record
    ) -> None:
        if row["status"] != "booked":
            await abort_precondition(
                context, "NOT_CANCELLABLE", "This appointment can no longer be changed."
            )
        notice = timedelta(minutes=row["cancellation_notice_minutes"])
        if principal.is_patient and datetime.now(UTC) > row["starts_at"] - notice:
            await abort_precondition(
                context,
                "CANCELLATION_TOO_LATE",
                "It is too late to change this appointment online. Please call the clinic.",
            )

    @requires(staff=STAFF, patient=True)
    async def CancelAppointment(
        self, request: pb.CancelAppointmentRequest, context: Context, principal: Principal
    ) -> pb.Appointment:
        problem = catalog.reason_problem(request.reason)
        if problem:
            await abort_invalid(context, {"reason": [problem]})
        async with self.pool.acquire() as conn, conn.transaction():
            before = await self._appointment(
                conn, context, principal, request.appointment_id, lock=True
            )
            if before["status"] == "cancelled":  # a repeated cancel changes nothing
                return convert.appointment(before)
            await self._patient_may_change(context, principal, before)
            await appointments.set_status(conn, before["id"], "cancelled", request.reason.strip())
            row = one(await appointments.get(conn, before["id"]))
            await self._emit(conn, "cancelled", row, principal, before)
            await access.record(
                conn, principal, "appointment.cancel", [row["patient_id"]], row["id"]
            )
        return convert.appointment(row)

    @requires(staff=STAFF, patient=True)
    async def RescheduleAppointment(
        self, request: pb.RescheduleAppointmentRequest, context: Context, principal: Principal
    ) -> pb.Appointment:
        errors: FieldErrors = {} if request.HasField("start") else {"start": ["Choose a time."]}
        catalog.check_instants(request, errors, "start")
        if errors:
            await abort_invalid(context, errors)
        start = epoch(request.start)
        kind: TypeRules | None = None
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    before = await self._appointment(
                        conn, context, principal, request.appointment_id, lock=True
                    )
                    await self._patient_may_change(context, principal, before)
                    provider_id = (
                        await parse_id(context, request.provider_id, "provider_id", "Provider")
                        if request.provider_id
                        else before["provider_id"]
                    )
                    kind = await calendars.load_type(conn, before["appointment_type_id"])
                    if kind is None:
                        raise LookupError("appointment type vanished")  # a foreign key holds it
                    if principal.is_patient and not kind.bookable_online:
                        # Patients pick times only where the clinic lets them book online.
                        await abort_precondition(
                            context,
                            "NOT_BOOKABLE_ONLINE",
                            "Only the clinic can move this appointment. Please call the clinic.",
                        )
                    await self._check_time(
                        conn, context, principal, kind, provider_id, start, before["id"]
                    )
                    starts, ends, blocked = self._blocked(kind, start)
                    # The row keeps its id: the old time is released by this same update.
                    await appointments.move(conn, before["id"], provider_id, starts, ends, blocked)
                    row = one(await appointments.get(conn, before["id"]))
                    await self._emit(conn, "rescheduled", row, principal, before)
                    await access.record(
                        conn, principal, "appointment.reschedule", [row["patient_id"]], row["id"]
                    )
            except asyncpg.ExclusionViolationError as exc:
                if kind is None:
                    raise
                if appointments.patient_clash(exc):
                    await abort_patient_busy(context, principal)
                await abort_slot(
                    context,
                    SLOT_TAKEN,
                    await self._alternatives(conn, kind, start, principal, moving=before["id"]),
                )
        return convert.appointment(row)

    @requires(staff=STAFF)
    async def SetAppointmentStatus(
        self, request: pb.SetAppointmentStatusRequest, context: Context, principal: Principal
    ) -> pb.Appointment:
        status = STAFF_STATUSES.get(request.status)
        if status is None:
            await abort_invalid(context, {"status": ["Choose arrived, fulfilled or noshow."]})
        async with self.pool.acquire() as conn, conn.transaction():
            before = await self._appointment(
                conn, context, principal, request.appointment_id, lock=True
            )
            if before["status"] == status:
                return convert.appointment(before)
            if before["status"] not in STATUS_FROM[status]:
                await abort_precondition(
                    context,
                    "STATUS_TRANSITION",
                    transition_refused(before["status"], status),
                )
            early = too_early(status, before["starts_at"], datetime.now(UTC), self.tz)
            if early:
                await abort_precondition(context, "STATUS_TOO_EARLY", early)
            await appointments.set_status(conn, before["id"], status)
            row = one(await appointments.get(conn, before["id"]))
            await self._emit(conn, "status_changed", row, principal, before)
            await access.record(
                conn, principal, f"appointment.{status}", [row["patient_id"]], row["id"]
            )
        return convert.appointment(row)

    @requires(staff=STAFF)
    async def ListWorkQueue(
        self, request: pb.ListWorkQueueRequest, context: Context, principal: Principal
    ) -> pb.ListWorkQueueResponse:
        # Filters naming another service's kinds or statuses select nothing here.
        if request.kind not in ("", work_queue.KIND) or (
            request.status and request.status not in work_queue.STATUSES
        ):
            return pb.ListWorkQueueResponse()
        limit = min(max(request.limit or work_queue.DEFAULT_LIMIT, 1), work_queue.MAX_LIMIT)
        async with self.pool.acquire() as conn:
            if request.count_only:
                return pb.ListWorkQueueResponse(total=await work_queue.count(conn, request.status))
            found, total = await work_queue.items(conn, request.status, limit, self.tz)
            await access.record(
                conn, principal, "work_queue.list", [uuid.UUID(i.patient_id) for i in found]
            )
        return pb.ListWorkQueueResponse(
            items=[
                pb.WorkQueueItem(
                    kind=work_queue.KIND,
                    id=i.id,
                    patient_id=i.patient_id,
                    summary=i.summary,
                    created_at=convert.timestamp(i.created_at),
                    status=i.status,
                )
                for i in found
            ],
            total=total,
        )


def too_early(status: str, starts_at: datetime, now: datetime, tz: ZoneInfo) -> str:
    """Why `status` cannot be set yet ('' when it can): arrived and fulfilled from the start of
    the appointment's day in the clinic (patients come early), no-show once it was due."""
    if status == "noshow":
        return "" if now >= starts_at else "Mark a no-show only once the appointment was due."
    day_starts = datetime.combine(starts_at.astimezone(tz).date(), dt_time(), tz)
    if now >= day_starts:
        return ""
    return f"Mark an appointment {status} only on its day."


def parse_page_token(token: str) -> tuple[int, str] | None:
    seconds, _, provider_id = token.partition(":")
    try:
        return int(seconds), str(uuid.UUID(provider_id))
    except ValueError:
        return None
