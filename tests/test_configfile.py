"""The strict TOML reader every role shares: how a refusal names an item of an array, and what it suggests."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hall_controller import config as hall_config
from hallq.configfile import Table, read_mqtt, refuse_duplicates
from hallq.errors import ConfigError
from hallq.mqtt import BrokerSettings
from tests.support import ROOT


def _root(text: str) -> Table:
    return Table(tomllib.loads(text), path="hall.toml", prefix="")


def _refusal(table: Table, *reads: str) -> ConfigError:
    """The refusal of reading the text keys ``reads`` of ``table``, then finishing it."""

    def read() -> None:
        for name in reads:
            table.text(name)
        table.done()

    with pytest.raises(ConfigError) as refused:
        read()
    return refused.value


def test_an_item_is_named_by_its_id() -> None:
    counters = _root('[[counters]]\nid = "1"\n[[counters]]\nid = "3"\n').tables("counters")
    assert counters[1].key("services") == 'counters[id="3"].services'


def test_an_item_without_an_id_is_named_by_its_position_counted_from_one() -> None:
    counters = _root('[[counters]]\nid = "1"\n[[counters]]\nname = "Quầy 3"\n').tables("counters")
    assert counters[1].key("id") == "counters[#2].id"


def test_an_item_with_a_malformed_id_is_named_by_its_position() -> None:
    counters = _root('[[counters]]\nid = 3\n[[counters]]\nid = "a b"\n').tables("counters")
    assert [c.key("id") for c in counters] == ["counters[#1].id", "counters[#2].id"]


def test_items_sharing_an_id_are_named_by_position_and_the_duplicate_names_the_first() -> None:
    counters = _root('[[counters]]\nid = "1"\n[[counters]]\nid = "2"\n[[counters]]\nid = "1"\n').tables("counters")
    assert [c.prefix for c in counters] == ["counters[#1]", 'counters[id="2"]', "counters[#3]"]
    with pytest.raises(ConfigError) as refused:
        refuse_duplicates(counters, ["1", "2", "1"], key="id")
    assert (refused.value.key, refused.value.problem) == ("counters[#3].id", "duplicate id '1' (also counters[#1])")


def test_an_item_may_be_named_by_another_identifying_key() -> None:
    buttons = _root('[[buttons]]\nkey = "A"\n').tables("buttons", id_key="key")
    assert buttons[0].key("pin") == 'buttons[key="A"].pin'


def test_a_misspelt_key_is_refused_with_the_closest_known_key() -> None:
    table = _root('label_vi = "Hộ tịch"\nprority = true\n')
    table.boolean("priority", False)
    refused = _refusal(table, "label_vi")
    assert (refused.key, refused.problem) == ("prority", "unknown key; did you mean 'priority'?")


def test_an_unknown_key_like_no_known_key_gets_no_suggestion() -> None:
    table = _root('label_vi = "Hộ tịch"\ncolour = "red"\n')
    table.boolean("priority", False)
    assert _refusal(table, "label_vi").problem == "unknown key"


def test_a_key_only_looked_for_is_suggested_too() -> None:
    table = _root('catgory = "child"\n')
    table.has("category")
    assert _refusal(table).problem.endswith("did you mean 'category'?")


def test_a_misspelt_required_key_is_pointed_at() -> None:
    refused = _refusal(_root('[[counter]]\nid = "1"\n'), "counters")
    assert (refused.key, refused.problem) == ("counters", "is required; is 'counter' a misspelling of it?")


def test_a_missing_required_key_is_not_confused_with_a_sibling() -> None:
    assert _refusal(_root('name_vi = "Hộ tịch"\n'), "name_en").problem == "is required"


def test_the_hall_config_names_the_counter_and_suggests_the_key(tmp_path: Path) -> None:
    text = (ROOT / "config" / "hall.example.toml").read_text(encoding="utf-8")
    path = tmp_path / "hall.toml"
    path.write_text(text.replace('policy = "priority_first"', 'polcy = "priority_first"', 1), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        hall_config.load(path)
    assert str(refused.value) == f"{path}: counters[id=\"1\"].polcy: unknown key; did you mean 'policy'?"


def test_a_roles_keepalive_defaults_to_the_links_measured_one() -> None:
    broker, _ = read_mqtt(Table(tomllib.loads('broker = "127.0.0.1:1883"\n'), path="x.toml", prefix="mqtt"))
    assert broker.keepalive_s == BrokerSettings().keepalive_s == 5
