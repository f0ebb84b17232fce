"""PostgreSQL: snapshots, row locks, advisory locks, jsonb, the system catalog."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.selectable import NamedFromClause

from igny8ctl.catalog import AccountColumnState, Constraint
from igny8ctl.dialects.base import Dialect, bind_safe, lock_key
from igny8ctl.errors import LockHolder


class PostgreSQL(Dialect):
    name: ClassVar[str] = "postgresql"
    writes_in_ctes: ClassVar[bool] = True
    row_locks: ClassVar[bool] = True
    alters_constraints: ClassVar[bool] = True

    def configure_engine(self, engine: Engine) -> None:
        """Connections need nothing beyond the URL's options; statements need bind names
        that a column's name cannot break."""
        engine.dialect.statement_compiler = bind_safe(engine.dialect.statement_compiler)

    def prepare_migration(self, dbapi_connection: Any) -> None:
        """Steps set their own timeouts; the session needs nothing."""

    def begin_read_only(self, connection: Connection, statement_timeout_ms: int) -> None:
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        self.set_timeouts(connection, statement_timeout_ms)

    def prepare_write(self, connection: Connection) -> None:
        """READ COMMITTED: a locked row's WHERE clause is re-checked against its newest version."""

    def set_timeouts(self, connection: Connection, statement_timeout_ms: int,
                     lock_timeout_ms: int | None = None) -> None:
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        # igny8ctl's statements are short set-based passes; JIT compilation costs more than
        # it saves on them.
        connection.exec_driver_sql("SET LOCAL jit = off")
        if lock_timeout_ms is not None:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")

    def json_text(self, column: sa.ColumnElement[Any], key: str) -> sa.ColumnElement[str]:
        return column.op("->>", return_type=sa.String)(sa.literal(key, sa.String))

    def image_type(self) -> sa.types.TypeEngine[Any]:
        """``json``, not ``jsonb``: images are written far more often than compared, and
        ``to_json`` costs less than ``to_jsonb``; comparisons cast to ``jsonb``."""
        from sqlalchemy.dialects.postgresql import JSON

        return JSON()

    def row_image(self, table: sa.FromClause,
                  columns: Sequence[sa.ColumnElement[Any]] | None = None
                  ) -> sa.ColumnElement[Any]:
        if columns is not None:
            pairs: list[Any] = []
            for column in columns:
                pairs += [sa.literal(column.name, sa.Text), column]
            return sa.func.json_build_object(*pairs, type_=self.image_type())
        assert isinstance(table, NamedFromClause), table
        return sa.func.to_json(sa.literal_column(self.quote(table.name)))

    def digest(self, values: Sequence[sa.ColumnElement[Any]]) -> sa.ColumnElement[str]:
        return sa.func.md5(sa.cast(sa.func.json_build_array(*values), sa.Text))

    def row_digest(self, connection: Connection, table: sa.Table) -> sa.ColumnElement[str]:
        """``hash_record_extended`` of the row where every column's type hashes its binary
        form (PostgreSQL 14+): a quarter of the cost of the md5 of the row's text form
        (``record_out`` formats every timestamp), which other tables keep."""
        if not _hashes_rows(connection, table):
            return self._text_digest(table)
        row: sa.ColumnElement[Any] = sa.literal_column(self.quote(table.name))
        return sa.literal(HASHED_DIGEST, sa.Text) + sa.cast(
            sa.func.hash_record_extended(row, 0), sa.Text)

    def recorded_row_digest(self, connection: Connection, table: sa.Table,
                            recorded: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        if not _hashes_rows(connection, table):
            return self._text_digest(table)
        return sa.case((recorded.startswith(HASHED_DIGEST, autoescape=True),
                        self.row_digest(connection, table)), else_=self._text_digest(table))

    def _text_digest(self, table: sa.Table) -> sa.ColumnElement[str]:
        """The md5 of the row's own text form (``record_out``): a third of ``to_json``'s."""
        return sa.func.md5(sa.cast(sa.literal_column(self.quote(table.name)), sa.Text))

    def among(self, column: sa.ColumnElement[Any], ids: Sequence[int]) -> sa.ColumnElement[bool]:
        """``= ANY(bigint[])``: an index scan visits the rows in key order, so an update
        writes heap pages and index entries in order (a hashed id set visits them at
        random, which made the fix's update take twice as long)."""
        from sqlalchemy.dialects.postgresql import ARRAY

        array = sa.cast(sa.literal(array_literal(ids, sa.BigInteger()), sa.Text),
                        ARRAY(sa.BigInteger()))
        return column == sa.func.any(array)

    def value_rows(self, rows: Sequence[Sequence[Any]],
                   columns: Sequence[tuple[str, sa.types.TypeEngine[Any]]]) -> sa.Subquery:
        """``unnest`` of one array parameter per column: the planner reads the arrays'
        length (a ``jsonb`` list looks like 100 rows, so 100,000 planned slugs were probed
        one index lookup each), and an array parses in half the time of the document."""
        from sqlalchemy.dialects.postgresql import ARRAY

        arrays = [sa.cast(sa.literal(array_literal(map(itemgetter(number), rows), kind),
                                     sa.Text), ARRAY(kind))
                  for number, (_, kind) in enumerate(columns)]
        planned = sa.func.unnest(*arrays).table_valued(
            *(sa.column(name, kind) for name, kind in columns)).render_derived()
        return sa.select(*(planned.c[name].label(name) for name, _ in columns)
                         ).subquery("planned")

    def check_constraints_now(self, connection: Connection) -> None:
        connection.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")

    def analyze(self, connection: Connection, table: sa.Table) -> None:
        connection.exec_driver_sql(f"ANALYZE {self.qualified(table)}")

    def image_field(self, image: sa.ColumnElement[Any],
                    column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        text = image.op("->>", return_type=sa.Text)(sa.literal(column.name, sa.Text))
        return sa.cast(text, column.type)

    def same_image(self, left: sa.ColumnElement[Any],
                   right: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(left, JSONB).is_not_distinct_from(sa.cast(right, JSONB))

    def slugify_sql(self, text: sa.ColumnElement[Any],
                    max_length: int) -> sa.ColumnElement[str]:
        collapsed = sa.func.regexp_replace(sa.func.lower(text), "[^a-z0-9]+", "-", "g")
        trimmed = sa.func.btrim(collapsed, "-")
        return sa.func.rtrim(sa.func.substr(trimmed, 1, max_length), "-")

    def lock_rows(self, query: sa.Select[Any],
                  of: sa.FromClause | None = None) -> sa.Select[Any]:
        return query.with_for_update(of=of) if of is not None else query.with_for_update()

    def xact_lock(self, connection: Connection, name: str) -> None:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": lock_key(name)})

    @contextmanager
    def job_lock(self, engine: Engine, name: str, wait_seconds: float) -> Iterator[None]:
        """A session advisory lock on a connection of its own, for the whole job."""
        from igny8ctl.db import acquire, connect

        key = lock_key(name)
        with connect(engine) as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            acquire(lambda: bool(connection.scalar(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})), name, wait_seconds,
                lambda: advisory_lock_holders(connection, key))
            try:
                yield
            finally:
                connection.scalar(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def account_column(self, connection: Connection, user: sa.Table, column: str,
                       account: sa.Table) -> AccountColumnState:
        names = {"user": self.qualified(user), "account": self.qualified(account),
                 "column": column}
        not_null = bool(connection.scalar(
            sa.text("SELECT attnotnull FROM pg_attribute "
                    "WHERE attrelid = to_regclass(:user) AND attname = :column"),
            names,
        ))
        checks = connection.execute(
            sa.text(
                "SELECT conname, convalidated FROM pg_constraint "
                "WHERE conrelid = to_regclass(:user) AND contype = 'c' "
                "AND pg_get_expr(conbin, conrelid) = format('(%I IS NOT NULL)', "
                "CAST(:column AS text)) ORDER BY conname"
            ),
            names,
        ).all()
        foreign_keys = connection.execute(
            sa.text(
                "SELECT c.conname, c.convalidated FROM pg_constraint c "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                "WHERE c.contype = 'f' AND c.conrelid = to_regclass(:user) "
                "AND c.confrelid = to_regclass(:account) AND a.attname = :column "
                "AND cardinality(c.conkey) = 1 ORDER BY c.conname"
            ),
            names,
        ).all()
        return AccountColumnState(
            not_null,
            tuple(Constraint(r.conname, bool(r.convalidated)) for r in checks),
            tuple(Constraint(r.conname, bool(r.convalidated)) for r in foreign_keys),
        )

    def foreign_keys(self, connection: Connection) -> dict[tuple[str | None, str],
                                                          list[dict[str, Any]]]:
        """From ``pg_constraint``'s column arrays: names arrive as data, whatever they hold
        (SQLAlchemy parses ``pg_get_constraintdef`` text, which a newline in a name breaks)."""
        rows = connection.execute(sa.text(
            "SELECT c.relname AS child, k.conname AS name, "
            "CASE WHEN rn.nspname = current_schema() THEN NULL ELSE rn.nspname END AS schema, "
            "r.relname AS parent, "
            "ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY o(n, i) "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = o.n ORDER BY o.i) "
            "AS columns, "
            "ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY o(n, i) "
            "JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = o.n ORDER BY o.i) "
            "AS parent_columns "
            "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_class r ON r.oid = k.confrelid "
            "JOIN pg_namespace rn ON rn.oid = r.relnamespace "
            "WHERE k.contype = 'f' AND c.relnamespace = to_regnamespace(current_schema()) "
            "ORDER BY c.relname, k.conname")).all()
        found: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault((None, row.child), []).append({
                "name": row.name, "constrained_columns": list(row.columns),
                "referred_schema": row.schema, "referred_table": row.parent,
                "referred_columns": list(row.parent_columns)})
        return found

    def unique_keys(self, connection: Connection, table: sa.Table,
                    columns: tuple[str, ...]) -> tuple[Constraint, ...]:
        rows = connection.execute(
            sa.text(
                "SELECT i.relname, x.indisvalid FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = to_regclass(:table) AND x.indisunique AND x.indimmediate "
                "AND x.indpred IS NULL AND x.indexprs IS NULL AND x.indnkeyatts = :count "
                "AND ARRAY(SELECT a.attname::text FROM pg_attribute a "
                "WHERE a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey::int2[]) "
                "ORDER BY a.attname::text COLLATE \"C\") = CAST(:columns AS text[]) "
                "ORDER BY x.indisvalid DESC, i.relname"
            ),
            {"table": self.qualified(table), "count": len(columns),
             "columns": sorted(columns, key=lambda name: name.encode())},
        ).all()
        return tuple(Constraint(r.relname, bool(r.indisvalid)) for r in rows)

    def composite_foreign_keys(self, connection: Connection, child: sa.Table,
                               columns: tuple[str, ...], parent: sa.Table,
                               parent_columns: tuple[str, ...]) -> tuple[Constraint, ...]:
        rows = connection.execute(
            sa.text(
                "SELECT c.conname, c.convalidated FROM pg_constraint c "
                "WHERE c.contype = 'f' AND c.conrelid = to_regclass(:child) "
                "AND c.confrelid = to_regclass(:parent) "
                "AND ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
                "ORDER BY k.i) = CAST(:columns AS text[]) "
                "AND ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
                "JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n "
                "ORDER BY k.i) = CAST(:parent_columns AS text[]) "
                "ORDER BY c.convalidated DESC, c.conname"
            ),
            {"child": self.qualified(child), "parent": self.qualified(parent),
             "columns": list(columns), "parent_columns": list(parent_columns)},
        ).all()
        return tuple(Constraint(r.conname, bool(r.convalidated)) for r in rows)


#: Who holds a session advisory lock taken with a bigint key: pg_locks splits the key into
#: classid (high 32 bits) and objid (low 32 bits), objsubid 1.
_ADVISORY_HOLDERS = sa.text(
    "SELECT a.pid, a.application_name, a.state, "
    "upper(substring(a.query FROM '^\\s*([A-Za-z]+)')) AS command, "
    "extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start)) AS age "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) ORDER BY a.pid")


def advisory_lock_holders(connection: Connection, key: int) -> tuple[LockHolder, ...]:
    """The sessions holding advisory lock ``key``: pid, application, state, age, command."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    rows = connection.execute(_ADVISORY_HOLDERS, {"high": unsigned >> 32,
                                                  "low": unsigned & 0xFFFFFFFF}).all()
    return tuple(LockHolder(int(row.pid), row.application_name or "", row.state or "",
                            float(row.age) if row.age is not None else None,
                            row.command or "") for row in rows)


#: How a digest made by ``hash_record_extended`` starts (an md5 is 32 hex digits).
HASHED_DIGEST = "hre:"


def _hashes_rows(connection: Connection, table: sa.Table) -> bool:
    """Whether ``hash_record_extended`` can digest every row of ``table``: PostgreSQL 14+,
    and every column of a type known to have an extended hash (``json`` has none)."""
    from sqlalchemy.dialects.postgresql import CITEXT, JSONB

    hashable = (sa.Integer, sa.String, sa.Boolean, sa.DateTime, sa.Date, sa.Time, sa.Numeric,
                sa.Float, sa.LargeBinary, sa.Uuid, JSONB)
    version = connection.dialect.server_version_info or (0,)
    return version >= (14,) and all(
        isinstance(column.type, hashable) and not isinstance(column.type, CITEXT)
        for column in table.c)


def array_literal(values: Iterable[Any], kind: sa.types.TypeEngine[Any]) -> str:
    """``values`` as PostgreSQL's text form of an array of ``kind``: integers as they are,
    text double-quoted with ``\\`` and ``"`` escaped, so no value can end its element or the
    array. Anything else is refused rather than coerced (``int(5.7)`` would plan a 5), and so
    is ``None``: a bare ``NULL`` means NULL only while the server's ``array_nulls`` is on."""
    if isinstance(kind, sa.Integer):
        return "{" + ",".join(map(_integer_element, values)) + "}"
    return "{" + ",".join(map(_text_element, values)) + "}"


def _integer_element(value: Any) -> str:
    if type(value) is not int:
        raise TypeError(f"value_rows: {type(value).__name__} in an integer column")
    return str(value)


def _text_element(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"value_rows: {type(value).__name__} in a text column")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
