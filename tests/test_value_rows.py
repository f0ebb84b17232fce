"""Boundary: the values a plan sends to PostgreSQL as array literals. Whatever is not the
column's own type is refused before it is sent, never coerced into another value."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from igny8ctl.dialects.postgresql import array_literal

REFUSED = [
    ("a float in an integer column", 5.7, sa.BigInteger()),
    ("a bool in an integer column", True, sa.BigInteger()),
    ("a digit string in an integer column", "5", sa.Integer()),
    ("None in an integer column", None, sa.BigInteger()),
    ("None in a text column", None, sa.Text()),
    ("an int in a text column", 5, sa.Text()),
    ("bytes in a text column", b"slug", sa.Text()),
]


@pytest.mark.parametrize("value, kind", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_values_not_of_the_column_type_are_refused(value: Any,
                                                   kind: sa.types.TypeEngine[Any]) -> None:
    with pytest.raises(TypeError, match="value_rows"):
        array_literal([1 if isinstance(kind, sa.Integer) else "ok", value], kind)


def test_text_elements_are_quoted_and_escaped() -> None:
    assert array_literal(['a"b', "c\\", "NULL", "{,}"], sa.Text()) == \
        '{"a\\"b","c\\\\","NULL","{,}"}'
