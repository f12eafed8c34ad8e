"""The test kit's own promises: the shared folder is found beside any checkout, and what a test cannot run
without fails it under CI=true instead of skipping it."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.testing.infra import host_tool, unavailable
from common.testing.shared import SHARED_DIR_ENV, repo_root, shared_dir, shared_file

CHECKOUT = Path(__file__).resolve().parents[3]


def test_the_shared_folder_is_beside_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_DIR_ENV, raising=False)
    assert repo_root() == CHECKOUT
    assert shared_dir() == CHECKOUT.parent / "shared"


def test_the_setting_points_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "wire").mkdir()
    (tmp_path / "wire" / "sample.json").write_text("{}")
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    assert shared_dir() == tmp_path.resolve()
    assert shared_file("wire", "sample.json") == tmp_path.resolve() / "wire" / "sample.json"


def test_a_missing_shared_file_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=SHARED_DIR_ENV):
        shared_file("data", "absent.csv")


def test_a_missing_shared_file_is_skipped_on_a_laptop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"absent\.csv"):
        shared_file("data", "absent.csv")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_host_tool_or_anything_else_fails_only_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="gridbot-no-such-tool"):
        host_tool("gridbot-no-such-tool")
    with pytest.raises(outcome, match="needs a thing"):
        unavailable("needs a thing")
