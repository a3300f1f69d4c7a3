"""Who may change the practice's set-up (DESIGN.md §3: every service checks the role itself).

* Providers (add, rename, deactivate, reactivate) and appointment types (add, edit): admin.
* Working hours, date overrides and time off: admin and front desk (they keep the calendar).
* Clinicians read the set-up and work with appointments; they do not change the set-up.

Every staff role reads all of it, books, cancels, reschedules and marks appointments. The
gateway hides or refuses the same changes (services/gateway/staff_roles.py, which a unit test
holds equal to these).
"""

from __future__ import annotations

PRACTICE_SETUP = frozenset({"admin"})
AVAILABILITY = frozenset({"admin", "front_desk"})
