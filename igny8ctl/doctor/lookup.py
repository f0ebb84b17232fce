"""Finding the user or the account a support question is about.

A user is found the way a person is identified at igny8's login, so that the doctor looks
at the account the app would use:

1. digits are a user id (primary key), as the issue of record asks; when they are also
   another user's username, the match says so (that user is reached by its own id);
2. else the exact username: Django's ``ModelBackend`` matches ``USERNAME_FIELD`` exactly
   (``get_by_natural_key``), so this is the user who signs in with that name; it goes
   through the username's unique index;
3. only when neither matches: the username or the email case-insensitively, as Django's
   ``iexact`` does (``UPPER(x) = UPPER(y)``), for the address a ticket quotes. Django
   creates no index for that, so this last lookup reads the user table once; an id or an
   exact username never does.

No match, or several, is a usage error listing the candidates (ids and usernames).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from igny8ctl.db import Igny8Schema
from igny8ctl.doctor.base import AccountFacts, UserFacts
from igny8ctl.errors import ConfigError
from igny8ctl.render.text import SHOWN, listing, printable

#: Largest value a bigint id can hold: longer digit strings are not ids.
ID_DIGITS = 18


def find_user(connection: Connection, schema: Igny8Schema, query: str) -> tuple[UserFacts, str]:
    """The one user ``query`` names, and how it was matched (``id``, ``username``, ...)."""
    if not query:
        raise ConfigError("give a user id, username or email", key="USER")
    user = schema.user
    shown = repr(printable(query)[:100])
    by_name = _users(connection, schema, user.username == query)
    if query.isdigit() and len(query) <= ID_DIGITS:
        by_id = _users(connection, schema, user.id == int(query))
        if by_id:
            others = [u for u in by_name if u.id != by_id[0].id]
            note = (f" ({shown} is also the username of user {others[0].id})" if others
                    else "")
            return by_id[0], "id" + note
    if by_name:
        return by_name[0], "username"
    folded = sa.func.upper(query)
    candidates = _users(connection, schema, sa.or_(sa.func.upper(user.username) == folded,
                                                   sa.func.upper(user.email) == folded),
                        limit=SHOWN + 1)
    if not candidates:
        raise ConfigError(f"no user matches {shown} (by id, exact username, or username or "
                          "email case-insensitively)", key="USER")
    if len(candidates) > 1:
        listed = candidates[:SHOWN]
        raise ConfigError(
            f"{shown} matches {'more than ' if len(candidates) > SHOWN else ''}{len(listed)} "
            f"users: {listing(f'{u.id} ({printable(u.username)})' for u in listed)}; "
            "give the id", key="USER",
            candidates=[{"id": u.id, "username": u.username} for u in listed])
    found = candidates[0]
    how = "username" if found.username.casefold() == query.casefold() else "email"
    return found, f"{how}, case-insensitively"


def _users(connection: Connection, schema: Igny8Schema, condition: sa.ColumnElement[bool],
           limit: int | None = None) -> list[UserFacts]:
    user = schema.user
    rows = connection.execute(
        sa.select(user.id, user.username, user.email, user.is_active, user.role,
                  user.account_id).where(condition).order_by(user.id).limit(limit)).all()
    return [UserFacts(int(r[0]), str(r[1]), str(r[2]), bool(r[3]), str(r[4]),
                      None if r[5] is None else int(r[5])) for r in rows]


def user_by_id(connection: Connection, schema: Igny8Schema, user_id: int) -> UserFacts | None:
    found = _users(connection, schema, schema.user.id == user_id)
    return found[0] if found else None


def load_account(connection: Connection, schema: Igny8Schema,
                 account_id: int) -> AccountFacts | None:
    """The account with its plan (one primary-key probe each), or None if it does not exist."""
    account, plan = schema.account, schema.plan
    row = connection.execute(
        sa.select(account.id, account.slug, account.name, account.status, account.owner_id,
                  account.plan_id, plan.slug)
        .select_from(account.table.outerjoin(plan.table, plan.id == account.plan_id))
        .where(account.id == account_id)).first()
    if row is None:
        return None
    return AccountFacts(int(row[0]), str(row[1]), str(row[2]), str(row[3]),
                        None if row[4] is None else int(row[4]), int(row[5]),
                        None if row[6] is None else str(row[6]))
