"""Django's own migration of the tenant column, made state-only once igny8ctl did the work.

After ``igny8ctl migrate apply`` the model still says ``null=True``; when the team changes it
and runs ``makemigrations``, Django's ``AlterField`` drops the user -> account foreign key and
adds it again in one transaction, validating every user under the ACCESS EXCLUSIVE lock of
the drop. ``rewrite`` wraps that operation, verbatim, in
``SeparateDatabaseAndState(state_operations=[...], database_operations=[])``: Django records
the change in its state and runs no DDL. Only the operation's own text is replaced (found
with ``ast``); formatting and comments elsewhere stay. ``check`` reports, for CI, every
operation that would drop and re-create a foreign key or scan a table under ACCESS
EXCLUSIVE.

A migration file is untrusted input: it is read only if it is a regular file of at most
``MAX_BYTES``, UTF-8, and a Django migration; it is parsed, never imported or run.
"""

from __future__ import annotations

import ast
import io
import os
import re
import stat
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from igny8ctl.config import Settings
from igny8ctl.errors import ConfigError, Refused
from igny8ctl.render.text import printable

MAX_BYTES = 4 * 1024 * 1024
_BOM = "\ufeff"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_FOREIGN_KEYS = ("ForeignKey", "OneToOneField")
#: Field options an ``AlterField`` may carry that are state only (Django writes no DDL for
#: them, or igny8ctl's revision did the DDL): anything else would be skipped by the rewrite.
_STATE_ONLY = frozenset({"to", "on_delete", "related_name", "related_query_name",
                         "limit_choices_to", "blank", "null", "verbose_name", "help_text",
                         "editable", "db_column"})
_DROP_AND_READD = ("Django drops the foreign key and adds it again in one transaction: the "
                   "new key is validated by scanning the whole table while the drop's ACCESS "
                   "EXCLUSIVE lock blocks every reader and writer")
_REWRITE_HINT = ("; once igny8ctl migrate apply has run, igny8ctl migrate django-state "
                 "rewrites it to change Django's state only")


@dataclass(frozen=True)
class FieldTarget:
    """The user model's tenant field as Django names it (``user.account``)."""

    model: str
    field: str
    column: str

    @classmethod
    def of(cls, settings: Settings, model: str | None = None,
           field: str | None = None) -> FieldTarget:
        column = settings.column_name("user", "account_id")
        default = column[:-3] if column.endswith("_id") else column
        return cls((model or "user").lower(), field or default, column)

    @property
    def label(self) -> str:
        return f"{self.model}.{self.field}"


@dataclass(frozen=True)
class Found:
    line: int
    operation: str


@dataclass(frozen=True)
class Hazard:
    line: int
    operation: str
    reason: str


@dataclass(frozen=True)
class FileResult:
    path: Path
    rewritten: tuple[Found, ...]
    already: tuple[Found, ...]
    hazards: tuple[Hazard, ...]


@dataclass(frozen=True)
class DjangoStateResult:
    KIND: ClassVar[str] = "migrate.django-state"

    check: bool
    target: str
    files: tuple[FileResult, ...]

    @property
    def failed(self) -> bool:
        """``--check``: a hazard remains; rewrite: nothing was (or had been) made state-only."""
        if self.check:
            return any(f.hazards for f in self.files)
        return not any(f.rewritten or f.already for f in self.files)

    @property
    def verdict(self) -> str:
        hazards = sum(len(f.hazards) for f in self.files)
        if self.check:
            if not hazards:
                return ("OK: no operation drops and re-creates a foreign key or scans a table "
                        "under ACCESS EXCLUSIVE")
            return (f"FAIL: {hazards} operation(s) would drop and re-create a foreign key or "
                    "scan a table under ACCESS EXCLUSIVE")
        rewritten = sum(len(f.rewritten) for f in self.files)
        if rewritten:
            return (f"rewrote {rewritten} operation(s) to change Django's state only: "
                    "sqlmigrate shows no DDL for them (the database already enforces it)")
        if any(f.already for f in self.files):
            return f"nothing to rewrite: the AlterField of {self.target} is already state-only"
        return (f"nothing rewritten: no AlterField of {self.target} to null=False that "
                "changes only what igny8ctl's revision did" + (
                    " (see the operations listed)" if hazards else ""))


def check(paths: list[Path], target: FieldTarget) -> DjangoStateResult:
    """Report the operations that would stall the table; reads the files, never the database."""
    results = [_analyse(path, Migration.read(path), target).result for path in paths]
    return DjangoStateResult(True, target.label, tuple(
        FileResult(r.path, (), r.already, r.hazards) for r in results))


def rewrite(settings: Settings, paths: list[Path], target: FieldTarget) -> DjangoStateResult:
    """Make the tenant column's ``AlterField`` state-only, after checking that the database
    enforces what it claims (NOT NULL and a validated foreign key); every file is read and
    parsed before the database is asked, and written (atomically) only after."""
    from igny8ctl.outputs import write_output

    migrations = [(path, Migration.read(path)) for path in paths]
    analyses = [_analyse(path, migration, target) for path, migration in migrations]
    if any(a.replacements for a in analyses):
        _require_enforced(settings, paths)
    for (path, migration), analysis in zip(migrations, analyses, strict=True):
        if analysis.replacements:
            write_output(path, migration.replaced(analysis.replacements), "FILE")
    return DjangoStateResult(False, target.label, tuple(
        FileResult(a.result.path, a.result.rewritten, a.result.already, a.skipped)
        for a in analyses))


def target_operation(target: FieldTarget) -> str:
    return f"AlterField {target.label}"


def _require_enforced(settings: Settings, paths: list[Path]) -> None:
    from igny8ctl.catalog import account_column_state
    from igny8ctl.db import create_engine, read_only, reflect

    engine = create_engine(settings)
    with read_only(engine, settings) as connection:
        state = account_column_state(connection, reflect(connection, settings))
    problems = [problem for problem, bad in (
        ("allows NULL", not state.not_null),
        ("has no validated foreign key", state.valid_foreign_key is None)) if bad]
    if problems:
        column = f"{settings.table_name('user')}.{settings.column_name('user', 'account_id')}"
        files = ", ".join(printable(str(p)) for p in paths)
        raise Refused(f"refusing to rewrite {files}, left unchanged: {printable(column)} "
                      f"{' and '.join(problems)}, so a state-only migration would claim what "
                      "the database does not enforce; run igny8ctl migrate apply first")


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """A migration file's text and syntax tree, and its ``operations`` list."""

    path: Path
    text: str
    bom: bool
    lines: tuple[str, ...]
    tree: ast.Module
    operations: ast.List | ast.Tuple

    @classmethod
    def read(cls, path: Path) -> Migration:
        where = printable(str(path))
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as error:
            raise ConfigError(f"cannot read {where}: {error.strerror}", key="FILE") from None
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ConfigError(f"{where} is not a regular file", key="FILE")
            with os.fdopen(os.dup(descriptor), "rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        finally:
            os.close(descriptor)
        if len(raw) > MAX_BYTES:
            raise ConfigError(f"{where} is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a "
                              "migration makemigrations wrote", key="FILE")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{where} is not UTF-8 text", key="FILE") from None
        bom = text.startswith(_BOM)
        source = text[1:] if bom else text
        try:
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError) as error:
            line = getattr(error, "lineno", None)
            detail = getattr(error, "msg", None) or str(error)
            raise ConfigError(f"{where} is not valid Python: {printable(detail)}"
                              + (f" (line {line})" if line else ""), key="FILE") from None
        except (RecursionError, MemoryError):
            raise ConfigError(f"{where} is nested too deeply to read", key="FILE") from None
        return cls(path, source, bom, tuple(_LINE.findall(source)), tree,
                   _operations(tree, where))

    def offset(self, line: int, column: int) -> int:
        """A character offset from ``ast``'s (line, UTF-8 byte column)."""
        before = sum(len(text) for text in self.lines[:line - 1])
        return before + len(self.lines[line - 1].encode("utf-8")[:column].decode("utf-8"))

    def segment(self, node: ast.expr) -> tuple[int, int]:
        assert node.end_lineno is not None and node.end_col_offset is not None
        return (self.offset(node.lineno, node.col_offset),
                self.offset(node.end_lineno, node.end_col_offset))

    def replaced(self, replacements: list[tuple[int, int, str]]) -> str:
        text = self.text
        for start, end, new in sorted(replacements, reverse=True):
            text = text[:start] + new + text[end:]
        return (_BOM if self.bom else "") + text


def _operations(tree: ast.Module, where: str) -> ast.List | ast.Tuple:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_name(base) == "Migration"
                                                  for base in node.bases):
            for statement in node.body:
                targets = (statement.targets if isinstance(statement, ast.Assign) else
                           [statement.target] if isinstance(statement, ast.AnnAssign) else [])
                value = getattr(statement, "value", None)
                if any(isinstance(t, ast.Name) and t.id == "operations" for t in targets) \
                        and isinstance(value, ast.List | ast.Tuple):
                    return value
    raise ConfigError(f"{where} is not a Django migration (no class Migration with an "
                      "operations list)", key="FILE")


def _name(node: ast.expr) -> str | None:
    """``AlterField`` for ``migrations.AlterField`` or ``AlterField``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _call(node: ast.expr | None) -> tuple[str | None, ast.Call | None]:
    if isinstance(node, ast.Call):
        return _name(node.func), node
    return None, None


def _argument(call: ast.Call, keyword: str, position: int | None = None) -> ast.expr | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _text(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# -- analysis ------------------------------------------------------------------------------


@dataclass
class _Analysis:
    result: FileResult
    #: The tenant field's AlterFields left as they are, and why (they change more).
    skipped: tuple[Hazard, ...]
    replacements: list[tuple[int, int, str]]


def _analyse(path: Path, migration: Migration, target: FieldTarget) -> _Analysis:
    rewritten: list[Found] = []
    already: list[Found] = []
    hazards: list[Hazard] = []
    skipped: list[Hazard] = []
    replacements: list[tuple[int, int, str]] = []
    for node in migration.operations.elts:
        name, call = _call(node)
        if call is None:
            continue
        if name == "SeparateDatabaseAndState":
            for state in _list(_argument(call, "state_operations", 1)):
                if _is_target(state, target):
                    already.append(Found(state.lineno, target_operation(target)))
            for operation in _list(_argument(call, "database_operations", 0)):
                hazards += _hazards(operation, target, inside_state=True)
            continue
        found = _hazards(call, target, inside_state=False)
        hazards += found
        if not _is_target(call, target):
            continue
        if _extra_options(call):
            skipped += found
        else:
            replacements.append((*migration.segment(call), _wrapped(migration, call)))
            rewritten.append(Found(call.lineno, target_operation(target)))
    return _Analysis(FileResult(path, tuple(rewritten), tuple(already), tuple(hazards)),
                     tuple(skipped), replacements)


def _list(node: ast.expr | None) -> list[ast.expr]:
    return list(node.elts) if isinstance(node, ast.List | ast.Tuple | ast.Set) else []


def _field(call: ast.Call) -> ast.Call | None:
    _, field = _call(_argument(call, "field", 2))
    return field


def _is_foreign_key(field: ast.Call | None) -> bool:
    if field is None or _name(field.func) not in _FOREIGN_KEYS:
        return False
    constraint = _argument(field, "db_constraint")
    return not (isinstance(constraint, ast.Constant) and constraint.value is False)


def _is_target(node: ast.expr, target: FieldTarget) -> bool:
    """``AlterField(model_name=<user>, name=<account>, field=ForeignKey(...))``, not nullable."""
    name, call = _call(node)
    if name != "AlterField" or call is None:
        return False
    model, field_name = _text(_argument(call, "model_name", 0)), _text(_argument(call, "name", 1))
    field = _field(call)
    if (model or "").lower() != target.model or field_name != target.field:
        return False
    if not _is_foreign_key(field):
        return False
    assert field is not None
    null = _argument(field, "null")
    column = _text(_argument(field, "db_column"))
    return not (isinstance(null, ast.Constant) and null.value is True) and column in (
        None, target.column)


def _extra_options(call: ast.Call) -> list[str]:
    field = _field(call)
    return [] if field is None else sorted(
        str(k.arg) for k in field.keywords if k.arg not in _STATE_ONLY)


def _hazards(node: ast.expr, target: FieldTarget, inside_state: bool) -> list[Hazard]:
    name, call = _call(node)
    if call is None:
        return []
    model = _text(_argument(call, "model_name", 0)) or "?"
    label = f"{name} {model.lower()}.{_text(_argument(call, 'name', 1)) or '?'}"
    where = " (in database_operations)" if inside_state else ""
    if name == "AlterField" and _is_foreign_key(_field(call)):
        reason = _DROP_AND_READD
        if _is_target(call, target):
            extra = _extra_options(call)
            reason += (f"; it also changes {', '.join(extra)}, which igny8ctl's revision did not "
                       "do, so it is left as is" if extra else _REWRITE_HINT)
        return [Hazard(call.lineno, label + where, reason)]
    if name == "AddField" and _is_foreign_key(_field(call)):
        return [Hazard(call.lineno, label + where,
                       "Django adds the column with its foreign key in one ALTER TABLE: the key "
                       "is validated by scanning the whole table under ACCESS EXCLUSIVE")]
    if name == "AddConstraint":
        kind, constraint = _call(_argument(call, "constraint", 1))
        constraint_label = f"{name} {model.lower()}"
        if kind == "CheckConstraint":
            return [Hazard(call.lineno, constraint_label + where,
                           "ADD CONSTRAINT … CHECK validates every row under ACCESS EXCLUSIVE")]
        if kind == "UniqueConstraint" and constraint is not None and not any(
                k.arg in ("condition", "include", "opclasses", "expressions")
                for k in constraint.keywords) and not constraint.args:
            return [Hazard(call.lineno, constraint_label + where,
                           "ADD CONSTRAINT … UNIQUE builds its index under ACCESS EXCLUSIVE")]
    if name == "AlterUniqueTogether" and _list(_argument(call, "unique_together", 1)):
        return [Hazard(call.lineno, f"{name} {_text(_argument(call, 'name', 0)) or '?'}" + where,
                       "each new unique_together is ADD CONSTRAINT … UNIQUE: its index is "
                       "built under ACCESS EXCLUSIVE")]
    return []


# -- rewriting -----------------------------------------------------------------------------


def _wrapped(migration: Migration, call: ast.Call) -> str:
    """``call`` inside ``SeparateDatabaseAndState``: its text verbatim, its continuation
    lines indented one level deeper except inside multi-line strings."""
    start, end = migration.segment(call)
    verbatim = migration.text[start:end]
    line = migration.lines[call.lineno - 1]
    newline = line[len(line.rstrip("\r\n")):] or "\n"
    base = " " * len(line[:start - migration.offset(call.lineno, 0)])
    step = " " * 4
    inner = _indented(verbatim, step * 2)
    prefix = _module_prefix(migration, call)
    return newline.join([
        f"{prefix}SeparateDatabaseAndState(",
        f"{base}{step}state_operations=[",
        f"{base}{step * 2}{inner},",
        f"{base}{step}],",
        f"{base}{step}database_operations=[],",
        f"{base})",
    ])


def _indented(text: str, indent: str) -> str:
    lines = _LINE.findall(text)
    inside_string: set[int] = set()
    kinds = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in kinds and token.end[0] > token.start[0]:
                inside_string.update(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        return text
    return "".join(line if number == 1 or number in inside_string or not line.strip()
                   else indent + line for number, line in enumerate(lines, 1))


def _module_prefix(migration: Migration, call: ast.Call) -> str:
    """How the file names Django's ``migrations`` module (``migrations.``)."""
    if isinstance(call.func, ast.Attribute):
        start, end = migration.segment(call.func.value)
        return migration.text[start:end] + "."
    for node in migration.tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "django.db":
            for alias in node.names:
                if alias.name == "migrations":
                    return (alias.asname or alias.name) + "."
        if isinstance(node, ast.ImportFrom) and node.module == "django.db.migrations":
            for alias in node.names:
                if alias.name == "SeparateDatabaseAndState":
                    return ""
    raise ConfigError(f"cannot rewrite {printable(str(migration.path))}: it does not import "
                      "migrations from django.db", key="FILE")
