"""Every command the README gives works from a clone: each `make` line's target exists and is
listed by `make help`, and each command its recipe runs (`make -n`) parses with the program's
own argument parser, strictly, without running the job. What the commands do is tested
elsewhere (the batch job and the load by the integration tests, `make test` by CI itself)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from retail_pipeline import cli
from tests.conftest import REPO_ROOT, SAMPLE_CSV

README = REPO_ROOT / "README.md"
VENV = Path(sys.prefix)
# Tools the lint recipe runs, and the subcommand words they take before their paths.
TOOL_WORDS = {"ruff": {"check", "format"}, "mypy": set(), "cfn-lint": set()}


def readme_commands() -> list[str]:
    """The commands of the README's bash blocks, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and shlex.join(words) not in commands:
                commands.append(shlex.join(words))
    return commands


COMMANDS = readme_commands()


def make(*args: str) -> str:
    """make in the repo with this interpreter's venv, never (re)installing it."""
    result = subprocess.run(
        ["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/.installed", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Parsed(Exception):
    """Raised in place of running a program, once its arguments parsed."""


@contextmanager
def parse_only() -> Iterator[None]:
    """The outermost argparse call parses strictly (an unknown argument is an error, even
    where the program tolerates Glue's), then stops the program with `Parsed`."""
    original = argparse.ArgumentParser.parse_known_args
    depth = 0

    def parse_known_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        nonlocal depth
        depth += 1
        try:
            parsed, extras = original(self, args, namespace)
        finally:
            depth -= 1
        if depth:
            return parsed, extras
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        raise Parsed(parsed)

    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]


def check_parses(program: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m MODULE ARGS` or `python SCRIPT ARGS`: the program's parser accepts ARGS."""
    if program[0] == "-m":
        target, args = program[1], program[2:]
        assert importlib.util.find_spec(target) is not None, target
        run = lambda: runpy.run_module(target, run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        script, args = REPO_ROOT / program[0], program[1:]
        assert script.is_file(), script
        run = lambda: runpy.run_path(str(script), run_name="__main__")  # noqa: E731
    monkeypatch.setattr(sys, "argv", [program[-len(args) - 1], *args])
    # As `python SCRIPT` does, the script's folder first (benchmarks/ imports its neighbours).
    monkeypatch.setattr(sys, "path", [str((REPO_ROOT / program[0]).parent), *sys.path])
    monkeypatch.setattr(cli, "configure_logging", lambda *_, **__: None)  # the suite's logging stays
    with parse_only(), pytest.raises(Parsed):
        run()


def check_pytest(args: list[str]) -> None:
    """pytest's own options: the plugins they need are installed, the markers registered."""
    if "-n" in args or "--dist" in args:
        assert importlib.util.find_spec("xdist") is not None, "pytest-xdist is not installed"
    if "-m" in args:
        expression = args[args.index("-m") + 1]
        registered = (REPO_ROOT / "pyproject.toml").read_text()
        for marker in re.findall(r"[a-z_]+", expression.replace("not", " ").replace("and", " ")):
            assert f'"{marker}:' in registered, f"marker {marker} is not registered in pyproject.toml"


def check_tool(tool: str, args: list[str]) -> None:
    assert (VENV / "bin" / tool).is_file(), f"{tool} is not installed in {VENV}"
    previous = ""
    for arg in args:
        # A word after an option is its value (`--include-checks I`), except after `--`.
        is_value = previous.startswith("-") and previous != "--"
        if not arg.startswith("-") and not is_value and arg not in TOOL_WORDS[tool]:
            assert (REPO_ROOT / arg).exists(), f"{tool} is given {arg}, which does not exist"
        previous = arg


def recipe(command: str) -> list[list[str]]:
    """The commands `make -n` would run for a README line, those of this venv's programs."""
    words = shlex.split(command)
    assert words[0] == "make", f"{command}: only make commands are checked here; add a check for it"
    runs = []
    for line in make("-n", *words[1:]).splitlines():
        tokens = shlex.split(line)
        if tokens and tokens[0].startswith(str(VENV / "bin")):
            runs.append([Path(tokens[0]).name, *tokens[1:]])
    return runs


def test_the_readme_gives_the_commands_a_new_user_needs() -> None:
    targets = {shlex.split(command)[1] for command in COMMANDS}
    assert {"run", "test", "test-fast", "help"} <= targets


@pytest.mark.parametrize("command", COMMANDS)
def test_each_readme_command_runs_programs_whose_arguments_parse(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = shlex.split(command)[1]
    runs = recipe(command)
    if target != "help":
        assert runs, f"{command} runs nothing from {VENV}"
    for program, *args in runs:
        if program.startswith("python"):
            if args[:2] == ["-m", "pytest"]:
                check_pytest(args[2:])
            else:
                check_parses(args, monkeypatch)
        else:
            assert program in TOOL_WORDS, f"{command} runs {program}: add a check for it"
            check_tool(program, args)


def test_make_help_lists_every_target_the_readme_names() -> None:
    listed = set(re.findall(r"^  make (\S+)", make("help"), flags=re.MULTILINE))
    assert {shlex.split(command)[1] for command in COMMANDS} <= listed


def test_make_run_runs_on_the_committed_sample() -> None:
    """`make run`'s batch step takes the local config's input: the sample the tests run on."""
    from retail_pipeline.config import load_config

    config = load_config(REPO_ROOT / "configs" / "local.yaml")
    assert (REPO_ROOT / config.batch.input).resolve() == SAMPLE_CSV
