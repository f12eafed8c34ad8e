"""Every command the READMEs show runs as written on a fresh machine right after `make install`.

A fresh machine has Python 3.11, `make` and the usual shell tools; `make install` bootstraps uv as a Python
module (`python3 -m uv`, never on the PATH) and puts everything else in `.venv/bin/`. So a README command may
call only those prerequisites, what `.venv/bin/` holds, and make targets that exist.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = sorted(
    path.relative_to(ROOT)
    for path in ROOT.rglob("README.md")
    if not any(part.startswith(".") or part == "node_modules" for part in path.relative_to(ROOT).parts)
)
# What the Quick start says a machine needs, plus the shell tools its examples use.
PREREQUISITES = frozenset({"make", "python3", "curl"})
_BLOCK = re.compile(r"^```(?:sh|bash|shell|console)\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")", "$(", "`"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def shell_lines(readme: Path) -> list[str]:
    """Every command line of the README's shell blocks, continuation lines joined."""
    lines: list[str] = []
    for block in _BLOCK.findall((ROOT / readme).read_text(encoding="utf-8")):
        lines.extend(line for line in block.replace("\\\n", " ").splitlines() if line.strip())
    return lines


def programs(line: str) -> list[list[str]]:
    """The simple commands of a line (each as its words), inside pipes, lists and `$( … )` too."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;()`")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in _SEPARATORS or (token.endswith("$") and token[:-1] and _ASSIGNMENT.match(token)):
            commands.append([])
            continue
        if not commands[-1] and _ASSIGNMENT.match(token):
            continue  # VAR=value before the program
        commands[-1].append(token)
    return [command for command in commands if command]


def make_targets() -> set[str]:
    """The targets the Makefile defines."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.MULTILINE))


def test_the_readmes_show_commands() -> None:
    assert Path("README.md") in READMES
    assert len(shell_lines(Path("README.md"))) >= 5


@pytest.mark.parametrize("readme", READMES, ids=str)
def test_every_readme_command_calls_what_a_fresh_install_has(readme: Path) -> None:
    targets = make_targets()
    for line in shell_lines(readme):
        for words in programs(line):
            program = words[0]
            if "/" in program:
                path = ROOT / program
                assert path.is_file() and os.access(path, os.X_OK), (
                    f"{readme}: `{line.strip()}` calls {program}, which `make install` does not create"
                )
                assert program.startswith(".venv/bin/"), f"{readme}: {program} is not an installed tool"
            else:
                assert program in PREREQUISITES, (
                    f"{readme}: `{line.strip()}` calls `{program}`, which a fresh machine does not have on its"
                    " PATH (uv is bootstrapped as `python3 -m uv`; installed tools live in .venv/bin/)"
                )
            if program == "make":
                for target in (word for word in words[1:] if not word.startswith("-") and "=" not in word):
                    assert target in targets, f"{readme}: `make {target}` is not a Makefile target"
