"""``hallq.cli``: the config loading every role's command line shares, with a real role's loader and file."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from counter import config as counter_config
from hallq.cli import config_refused, load_config
from hallq.errors import EXIT_CONFIG, ConfigError
from tests.support import FIXTURES

log = logging.getLogger("role")


def test_broker_option_replaces_the_files_broker_address() -> None:
    cfg = load_config(counter_config.load, FIXTURES / "counter.toml", log=log, broker="10.0.0.7:8883")
    assert cfg is not None
    assert (cfg.broker.host, cfg.broker.port) == ("10.0.0.7", 8883)


def test_without_options_the_file_is_taken_as_it_is() -> None:
    cfg = load_config(counter_config.load, FIXTURES / "counter.toml", log=log)
    assert cfg == counter_config.load(FIXTURES / "counter.toml")


def test_a_bad_file_is_one_line_on_the_roles_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nowhere.toml"
    assert load_config(counter_config.load, missing, log=log) is None
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("role", "ERROR", f"bad configuration: {missing}: file not found")]


def test_a_malformed_broker_option_is_refused_naming_the_option(caplog: pytest.LogCaptureFixture) -> None:
    assert load_config(counter_config.load, FIXTURES / "counter.toml", log=log, broker="no-port") is None
    assert caplog.records[0].getMessage().startswith("bad configuration: --broker")


def test_an_override_applies_after_the_broker_and_may_refuse(caplog: pytest.LogCaptureFixture) -> None:
    def louder(cfg: counter_config.CounterConfig) -> counter_config.CounterConfig:
        assert cfg.broker.host == "10.0.0.7"
        return replace(cfg, log_level="DEBUG")

    def refuse(_cfg: counter_config.CounterConfig) -> counter_config.CounterConfig:
        raise ConfigError("--listen", "", "not an address")

    done = load_config(counter_config.load, FIXTURES / "counter.toml", log=log, broker="10.0.0.7:1883",
                       override=louder)
    assert done is not None and done.log_level == "DEBUG"
    assert load_config(counter_config.load, FIXTURES / "counter.toml", log=log, override=refuse) is None
    assert caplog.records[-1].getMessage() == "bad configuration: --listen: not an address"


def test_a_later_refusal_exits_with_the_config_status(caplog: pytest.LogCaptureFixture) -> None:
    assert config_refused(log, ConfigError("/etc/hallq/counter.toml", "mqtt.password_file", "not found")) == EXIT_CONFIG
    assert caplog.records[0].getMessage() == "bad configuration: /etc/hallq/counter.toml: mqtt.password_file: not found"
