"""The local driver's JIT directives: methods compiled by C1 only, as the JVM reads them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from retail_pipeline.config import ConfigError, load_config, parse_config
from retail_pipeline.jvm_tuning import c1_only_directives, c1_only_options
from tests.conftest import REPO_ROOT

LOCAL = REPO_ROOT / "configs" / "local.yaml"


def jvm_directives(directives: Path) -> subprocess.CompletedProcess[str]:
    """Start a JVM with the directives and have it print what it made of them."""
    java = shutil.which("java")
    assert java, "the tests need Java 17 on the PATH"
    options = [*c1_only_options(directives).split(), "-XX:+CompilerDirectivesPrint", "-version"]
    return subprocess.run([java, *options], check=False, capture_output=True, text=True, timeout=60)


def test_the_jvm_excludes_the_local_configs_methods_from_c2_only(tmp_path: Path) -> None:
    patterns = load_config(LOCAL).spark.jit_c1_only
    assert patterns, "configs/local.yaml names the methods C2 leaves alone"
    directives = tmp_path / "directives.json"
    directives.write_text(c1_only_directives(patterns))

    result = jvm_directives(directives)

    assert result.returncode == 0, result.stdout + result.stderr
    printed = result.stdout + result.stderr
    assert "1 compiler directives added" in printed
    ours = printed.split("Directive: (default)")[0]  # the JVM's own default directive follows
    matching = next(line for line in ours.splitlines() if line.strip().startswith("matching:"))
    assert sorted(p.strip() for p in matching.split(":", 1)[1].split(",")) == sorted(patterns)
    c1, c2 = ours.split(" c1 directives:")[1].split(" c2 directives:")
    assert "Exclude:false" in c1  # C1 still compiles them
    assert "Exclude:true" in c2


def test_the_jvm_refuses_to_start_on_directives_it_cannot_parse(tmp_path: Path) -> None:
    # Why the config checks each pattern before any JVM sees it.
    directives = tmp_path / "directives.json"
    directives.write_text(c1_only_directives(["not a method pattern"]))

    result = jvm_directives(directives)

    assert result.returncode != 0
    assert "Could not load file" in result.stdout + result.stderr


@pytest.mark.parametrize("pattern", ["not a method pattern", "org/codehaus/janino/*", "org.codehaus.*;rm"])
def test_a_pattern_the_jvm_could_not_parse_is_a_config_error(pattern: str) -> None:
    text = LOCAL.read_text().replace("  jit_c1_only:\n", f"  jit_c1_only:\n    - {pattern!r}\n", 1)
    assert pattern in text

    with pytest.raises(ConfigError, match=r"'spark\.jit_c1_only'.*not a method pattern"):
        parse_config(text, source="local.yaml")
