"""The model contract and the settings record, without a server or a database."""

from __future__ import annotations

import json

import pytest

from igny8ctl.cluster.base import name_key
from igny8ctl.cluster.contract import (
    AnswerCluster,
    MalformedAnswer,
    check_answer,
    messages,
    parse_answer,
    response_format,
)
from igny8ctl.cluster.openai_engine import default_batch_size
from igny8ctl.cluster.settings import OpenAISettings
from igny8ctl.cluster.types import KeywordIds


def test_check_answer_sorts_out_invented_missing_and_duplicates() -> None:
    sent = ["a b", "c d", "e f", "g h"]
    answer = [AnswerCluster("One", "", ("a b", "x y", "c d")),
              AnswerCluster("Two", "", ("c d", "A B")),
              AnswerCluster("Three", "", ("e f",))]
    checked = check_answer(answer, sent)
    assert checked.clusters == (("One", "", (0, 1)), ("Three", "", (2,)))
    assert checked.missing == (3,)
    assert checked.invented == ("x y", "A B")
    assert checked.duplicates == 1


@pytest.mark.parametrize(("content", "message"), [
    (None, "empty answer"),
    ("  ", "empty answer"),
    ("[1, 2", "malformed JSON"),
    ('["a"]', '"clusters" array'),
    ('{"clusters": [3]}', "cluster 0 is not an object"),
    ('{"clusters": [{"name": "n", "keywords": "a"}]}', '"keywords" array of strings'),
    ('{"clusters": [{"name": 3, "keywords": []}]}', "not text"),
])
def test_parse_answer_rejects(content: str | None, message: str) -> None:
    with pytest.raises(MalformedAnswer, match=message):
        parse_answer(content)


def test_parse_answer_tolerates_optional_fields() -> None:
    parsed = parse_answer('{"clusters": [{"name": "N", "keywords": ["k"], "intent": "x"}]}')
    assert parsed == [AnswerCluster("N", "", ("k",))]


def test_request_shape() -> None:
    system, user = messages(["a", "b \"c\""], ["Existing"])
    assert json.loads(user["content"]) == ["a", 'b "c"']
    assert system["role"] == "system" and '["Existing"]' in system["content"]
    schema = response_format()["json_schema"]["schema"]
    item = schema["properties"]["clusters"]["items"]
    assert item["required"] == ["name", "description", "keywords"]


def test_name_key() -> None:
    assert name_key("Running Shoes!") == name_key("running  shoe") == "running shoe"
    assert name_key("  ?? ") == ""


def test_default_batch_size() -> None:
    assert default_batch_size(None) == 150
    assert default_batch_size(4000) == 150
    assert default_batch_size(600) == 50
    assert default_batch_size(50) == 10


def test_settings_never_show_the_key() -> None:
    settings = OpenAISettings("sk-secret-0123456789", "m", "http://h/v1", None, None,
                              "tenant acme's openai settings", False, "--api-key")
    assert "sk-secret" not in repr(settings) and "sk-secret" not in settings.describe()
    assert "API key from --api-key" in settings.describe()


def test_keyword_ids_round_trip_compactly() -> None:
    ids = [1, 2, 3, 130, 20_000, 2**40, 2**63 - 1]
    stored = KeywordIds(ids)
    assert list(stored) == ids and len(stored) == len(ids)
    dense = KeywordIds(range(1000, 101_000))
    assert len(dense._data) < 100_100
    with pytest.raises(ValueError, match="ascending"):
        stored.extend([5])
