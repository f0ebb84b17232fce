"""The SQLite executor: a step's statements, then a table rebuild from its own definition.

SQLite cannot alter a column or add a constraint in place, so the table is rebuilt the way
SQLite's documentation prescribes, inside the migration's one transaction with
``PRAGMA foreign_keys`` off: the stored ``CREATE TABLE`` text, changed only where asked (a
column's NULL-ability, a foreign key added or dropped), creates a copy; the rows are copied;
the old table is dropped and the copy renamed; its indexes and triggers are created again
from their stored text, and the ``AUTOINCREMENT`` sequence is restored. Everything else
Django wrote (types, inline UNIQUE and REFERENCES, DEFERRABLE, CHECKs) stays as written.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import sqlalchemy as sa

from igny8ctl.dialects import dialect_named
from igny8ctl.errors import ConfigError, Refused
from igny8ctl.migrations.steps import ForeignKeySpec, Rebuild, Step, run_sql

_TOKEN = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|`[^`]*`|\[[^\]]*\]|[(),]|\s+'
                    r'|[^\s(),"\'`\[]+')
_TABLE_CONSTRAINT = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}
quote = dialect_named("sqlite").quote


def execute(connection: sa.Connection, step: Step) -> float:
    """Run ``step`` inside the migration's transaction; its duration in seconds."""
    started = time.perf_counter()
    for statement in step.statements:
        run_sql(connection, statement)
    if step.rebuild is not None:
        rebuild(connection, step.rebuild)
    return time.perf_counter() - started


def rebuild(connection: sa.Connection, spec: Rebuild) -> None:
    if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise ConfigError("SQLite's PRAGMA foreign_keys must be OFF while a table is rebuilt "
                          "(igny8ctl's Alembic environment turns it off)")
    name = spec.table
    stored = connection.execute(
        sa.text("SELECT type, sql FROM sqlite_master WHERE tbl_name = :name AND sql IS NOT NULL"),
        {"name": name}).all()
    create = next(sql for kind, sql in stored if kind == "table")
    others = [sql for kind, sql in stored if kind in ("index", "trigger")]
    definition = Definition.parse(create)
    for column, nullable in spec.nullable:
        definition.set_nullable(column, nullable)
    for key in spec.drop_foreign_keys:
        definition.drop_foreign_key(key)
    for key in spec.add_foreign_keys:
        definition.add_foreign_key(key)
    sequence = connection.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :name"),
                                 {"name": name}) if definition.autoincrement else None
    copy = f"igny8ctl_rebuild_{name}"
    run_sql(connection, definition.sql(copy))
    run_sql(connection, f"INSERT INTO {quote(copy)} SELECT * FROM {quote(name)}")
    run_sql(connection, f"DROP TABLE {quote(name)}")
    run_sql(connection, f"ALTER TABLE {quote(copy)} RENAME TO {quote(name)}")
    for sql in others:
        run_sql(connection, sql)
    if sequence is not None:
        connection.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :name"),
                           {"name": name})
        connection.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
                           {"name": name, "seq": sequence})
    if run_sql(connection, f"PRAGMA foreign_key_check({quote(name)})").first():
        raise Refused(f"{name} has rows pointing at missing or other tenants' rows; nothing was "
                      "changed; igny8ctl check names them: repair them and apply again")


@dataclass
class Definition:
    """A ``CREATE TABLE`` statement as SQLite stored it, split into its items."""

    head: str
    items: list[str]
    tail: str

    @classmethod
    def parse(cls, sql: str) -> Definition:
        tokens = _TOKEN.findall(sql)
        if "".join(tokens) != sql or "(" not in tokens:
            raise ConfigError("cannot read the table's definition to rebuild it")
        start = tokens.index("(")
        depth = 0
        items: list[str] = []
        current: list[str] = []
        for index in range(start + 1, len(tokens)):
            token = tokens[index]
            if token == "(":
                depth += 1
            elif token == ")":
                if depth == 0:
                    items.append("".join(current).strip())
                    head = "".join(tokens[:start]).strip()
                    return cls(head, items, "".join(tokens[index + 1:]))
                depth -= 1
            if token == "," and depth == 0:
                items.append("".join(current).strip())
                current = []
            else:
                current.append(token)
        raise ConfigError("cannot read the table's definition to rebuild it")

    @property
    def autoincrement(self) -> bool:
        return any(_word(t) == "AUTOINCREMENT" for item in self.items for t in _tokens(item))

    def sql(self, table: str) -> str:
        return f"CREATE TABLE {quote(table)} ({', '.join(self.items)}){self.tail}"

    def set_nullable(self, column: str, nullable: bool) -> None:
        for index, item in enumerate(self.items):
            tokens = _tokens(item)
            if _word(tokens[0]) in _TABLE_CONSTRAINT or _name(tokens[0]) != column:
                continue
            self.items[index] = _with_nullability(item, nullable)
            return
        raise ConfigError(f"the table has no column {column} to rebuild")

    def add_foreign_key(self, key: ForeignKeySpec) -> None:
        columns = ", ".join(quote(c) for c in key.columns)
        parent_columns = ", ".join(quote(c) for c in key.parent_columns)
        self.items.append(f"CONSTRAINT {quote(key.name)} FOREIGN KEY ({columns}) REFERENCES "
                          f"{quote(key.parent)} ({parent_columns}) MATCH SIMPLE "
                          "DEFERRABLE INITIALLY DEFERRED")

    def drop_foreign_key(self, key: ForeignKeySpec) -> None:
        self.items = [item for item in self.items if _table_key(_tokens(item)) != (
            key.columns, key.parent, key.parent_columns)]


def _tokens(item: str) -> list[str]:
    return [t for t in _TOKEN.findall(item) if not t.isspace()]


def _word(token: str) -> str:
    return token.upper()


def _name(token: str) -> str:
    """An identifier token without its quotes."""
    if token[:1] == '"':
        return token[1:-1].replace('""', '"')
    if token[:1] in "`[":
        return token[1:-1]
    return token


def _group(tokens: list[str], start: int) -> tuple[list[str], int]:
    """The names in the parenthesised list opening at ``start``, and the index after it."""
    names, index = [], start + 1
    while index < len(tokens) and tokens[index] != ")":
        if tokens[index] != ",":
            names.append(_name(tokens[index]))
        index += 1
    return names, index + 1


def _table_key(tokens: list[str]) -> tuple[tuple[str, ...], str, tuple[str, ...]] | None:
    """(columns, parent, parent columns) of a table-level FOREIGN KEY item, else None."""
    words = [_word(t) for t in tokens]
    if "FOREIGN" not in words or words[0] not in ("CONSTRAINT", "FOREIGN"):
        return None
    at = words.index("FOREIGN")
    if at + 2 >= len(tokens) or words[at + 1] != "KEY" or tokens[at + 2] != "(":
        return None
    columns, index = _group(tokens, at + 2)
    if index + 2 >= len(tokens) or words[index] != "REFERENCES" or tokens[index + 2] != "(":
        return None
    parent = _name(tokens[index + 1])
    parent_columns, _ = _group(tokens, index + 2)
    return tuple(columns), parent, tuple(parent_columns)


def _with_nullability(item: str, nullable: bool) -> str:
    """A column definition with NOT NULL added or taken away, the rest as written.

    Only constraint keywords at the top level count: ``DEFAULT NULL`` and anything inside
    parentheses or quotes is left alone.
    """
    tokens = _TOKEN.findall(item)
    significant = [i for i, token in enumerate(tokens) if not token.isspace()]
    depth, found, previous = 0, False, ""
    for index in significant:
        token = tokens[index]
        word = _word(token)
        if token in "()":
            depth += 1 if token == "(" else -1
        elif depth == 0 and word == "NULL" and previous == "NOT":
            found = True
            if nullable:
                not_at = max(i for i in significant if i < index)
                tokens[not_at:index] = [""] * (index - not_at)
        elif depth == 0 and word == "NULL" and previous != "DEFAULT":
            found = True
            if not nullable:
                tokens[index] = "NOT NULL"
        previous = word
    text = "".join(tokens)
    return text if found or nullable else text + " NOT NULL"
