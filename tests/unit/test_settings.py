"""Settings: defaults, then cfx.toml in the repository, then in $CFX_HOME, then CFX_* variables."""

from __future__ import annotations

import pytest

from cfxlib.core.settings import SettingsError, load_settings


def test_precedence(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    monkeypatch.setenv("CFX_HOME", str(home))
    assert load_settings().service.port == 8001
    (repo / "cfx.toml").write_text("[service]\nport = 9001\n[demo]\naccounts = 50\n")
    assert load_settings().service.port == 9001
    (home / "cfx.toml").write_text("[service]\nport = 9002\n")
    settings = load_settings()
    assert settings.service.port == 9002 and settings.demo.accounts == 50
    monkeypatch.setenv("CFX_SERVICE__PORT", "9003")
    assert load_settings().service.port == 9003
    assert load_settings().home == home


def test_unknown_key_in_toml_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "h"))
    (tmp_path / "cfx.toml").write_text("[service]\nprot = 1\n")
    with pytest.raises(SettingsError, match="service.prot"):
        load_settings()


def test_unknown_environment_variable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CFX_TRESHOLDS__UPTIME_MIN_PCT", "99")
    with pytest.raises(SettingsError, match="CFX_TRESHOLDS"):
        load_settings()


def test_bad_value_names_the_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CFX_THRESHOLDS__UPTIME_MIN_PCT", "150")
    with pytest.raises(SettingsError, match="thresholds.uptime_min_pct"):
        load_settings()
