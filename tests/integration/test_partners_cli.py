"""``edigate partners import | export`` against the embedded database of a data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.cli import COMMAND_MODULES, main
from gateway.settings import Settings
from tests.conftest_api import TEST_SECRET_KEY, sample_profile


@pytest.fixture(autouse=True)
def partners_command(monkeypatch: pytest.MonkeyPatch, embedded_settings: Settings) -> None:
    """Registers the command (until the lead lists it) and fixes the secret key via the env."""
    monkeypatch.setitem(COMMAND_MODULES, "partners", "gateway.cli.partner_commands")
    monkeypatch.setenv("EDIGATE_SECRET_KEY", TEST_SECRET_KEY)


def _write(tmp_path: Path, profile: dict[str, object], name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(profile))
    return path


def test_import_creates_then_updates_then_reports_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(tmp_path / "data")
    path = _write(tmp_path, sample_profile())
    assert main(["partners", "import", str(path), "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.strip() == "created partner acme-retail (version 1)"
    assert main(["partners", "import", str(path), "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.strip() == "partner acme-retail unchanged (version 1)"
    path = _write(tmp_path, sample_profile(name="ACME Two"))
    assert main(["partners", "import", str(path), "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.strip() == "updated partner acme-retail to version 2"


def test_export_prints_yaml_without_secrets_that_imports_back_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(tmp_path / "data")
    main(["partners", "import", str(_write(tmp_path, sample_profile())), "--data-dir", data_dir])
    capsys.readouterr()
    assert main(["partners", "export", "acme-retail", "--data-dir", data_dir]) == 0
    exported = capsys.readouterr().out
    assert "s3cret-pw" not in exported and "acme-header-secret" not in exported
    document = yaml.safe_load(exported)
    assert document["transports"]["sftp"]["remote"]["password"] == "***"
    (tmp_path / "exported.yaml").write_text(exported)
    assert main(["partners", "import", str(tmp_path / "exported.yaml"), "--data-dir", data_dir]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_import_uses_edigate_data_dir_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EDIGATE_DATA_DIR", str(tmp_path / "env-data"))
    assert main(["partners", "import", str(_write(tmp_path, sample_profile()))]) == 0
    assert (tmp_path / "env-data" / "edigate.sqlite3").exists()
    assert main(["partners", "export", "acme-retail"]) == 0
    assert "acme-retail" in capsys.readouterr().out


def test_an_invalid_profile_names_its_fields_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, sample_profile(status="live"))
    assert main(["partners", "import", str(path), "--data-dir", str(tmp_path / "data")]) == 1
    assert "status:" in capsys.readouterr().err


def test_unreadable_file_exits_2_and_unknown_partner_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(tmp_path / "data")
    assert main(["partners", "import", str(tmp_path / "missing.yaml"), "--data-dir", data_dir]) == 2
    assert main(["partners", "export", "nobody", "--data-dir", data_dir]) == 1
    assert "no partner nobody" in capsys.readouterr().err
