"""Config loading: a wrong key stops the job at start, naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_pipeline.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config

VALID = """
env: test
spark:
  app_name: app
  master: null
  conf: {spark.sql.shuffle.partitions: 4, spark.ui.enabled: false}
batch:
  input: in.csv
  output: out
  encoding: utf-8
  quarantine_unterminated_last_line: true
quality:
  enabled: true
  invoice_ts_min: "2010-12-01 00:00:00"
  invoice_ts_max: "2011-12-09 23:59:59"
  known_countries: [United Kingdom, France]
  examples_shown: 5
"""


def test_the_committed_local_config_loads() -> None:
    config = load_config()
    assert config.env == "local"
    assert config.batch.input == "data/raw/online_retail_first_9999.csv"
    assert config.source == str(DEFAULT_CONFIG)


def test_values_are_typed_and_spark_settings_are_strings() -> None:
    config = parse_config(VALID, source="x.yaml")
    assert config.spark.master is None
    assert config.spark.conf == {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"}
    assert config.batch.quarantine_unterminated_last_line is True
    assert config.quality.known_countries == ("United Kingdom", "France")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("  output: out\n", ""), "x.yaml: missing key 'batch.output'"),
        (lambda t: t.replace("  encoding: utf-8", "  encodng: utf-8"), "x.yaml: unknown key 'batch.encodng'"),
        (lambda t: t + "extra: 1\n", "x.yaml: unknown key 'extra'"),
        (
            lambda t: t.replace("true", "'yes'"),
            "'batch.quarantine_unterminated_last_line' must be true or false",
        ),
        (lambda t: t.replace("input: in.csv", "input: ''"), "'batch.input' must be a non-empty string"),
        (lambda t: "- a list\n", "x.yaml: the top level must be a mapping"),
        (lambda t: "env: [unclosed\n", "x.yaml: not valid YAML"),
        (
            lambda t: t.replace("[United Kingdom, France]", "France"),
            "'quality.known_countries' must be a list",
        ),
    ],
)
def test_a_bad_config_is_named(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as error:
        parse_config(edit(VALID), source="x.yaml")
    assert message in str(error.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
