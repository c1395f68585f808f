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


def test_secrets_come_from_the_environment_or_key_files_never_cfx_toml(tmp_path, monkeypatch):
    from cfxlib.core.settings import read_secret

    home = tmp_path / "h"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(home))
    assert read_secret(load_settings(), "smtp") is None
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "smtp-password").write_text("from-file\n")
    assert read_secret(load_settings(), "smtp") == "from-file"
    monkeypatch.setenv("CFX_SMTP__PASSWORD", "from-env")
    settings = load_settings()
    assert read_secret(settings, "smtp") == "from-env"
    assert "from-env" not in repr(settings) and "from-env" not in settings.model_dump_json()
    (tmp_path / "cfx.toml").write_text('[webhooks]\nsecret = "whsec_abc"\n')
    with pytest.raises(SettingsError, match=r"\[webhooks\] secret is a secret.*CFX_WEBHOOKS__SECRET"):
        load_settings()


def test_lists_and_nested_sections_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CFX_INVESTOR__RECIPIENTS", '["a@example.com", "b@example.com"]')
    monkeypatch.setenv("CFX_SMTP__STARTTLS", "true")
    settings = load_settings()
    assert settings.investor.recipients == ["a@example.com", "b@example.com"]
    assert settings.smtp.starttls is True and settings.alerts.recipients is None


def test_a_broken_or_mistyped_cfx_toml_names_the_file_line_source_and_the_close_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "h"))
    (tmp_path / "cfx.toml").write_text("[thresholds\nuptime_min_pct = 99\n")
    with pytest.raises(SettingsError, match=r"cfx\.toml: not valid TOML: .*line 1"):
        load_settings()
    (tmp_path / "cfx.toml").write_text("[thresholds]\nuptime_min = 99\n")
    with pytest.raises(
        SettingsError,
        match=r"thresholds\.uptime_min.*cfx\.toml \(\[thresholds\] uptime_min\).*did you mean uptime_min_pct",
    ):
        load_settings()
    (tmp_path / "cfx.toml").unlink()
    monkeypatch.setenv("CFX_SERVICE__PROT", "9")
    with pytest.raises(SettingsError, match=r"environment variable CFX_SERVICE__PROT.*did you mean port"):
        load_settings()


def test_spark_properties_from_the_environment_or_cfx_toml_and_bad_json_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "h"))
    assert load_settings().spark.conf == {}
    (tmp_path / "cfx.toml").write_text('[spark.conf]\n"spark.sql.shuffle.partitions" = "2"\n')
    assert load_settings().spark.conf == {"spark.sql.shuffle.partitions": "2"}
    monkeypatch.setenv(
        "CFX_SPARK__CONF", '{"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "1"}'
    )
    merged = {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "1"}
    assert load_settings().spark.conf == merged  # key by key, the environment wins
    monkeypatch.setenv("CFX_SPARK__CONF", "spark.sql.adaptive.enabled=false")
    with pytest.raises(SettingsError, match=r"CFX_SPARK__CONF, must be JSON"):
        load_settings()
    monkeypatch.setenv("CFX_INVESTOR__RECIPIENTS", "a@example.com")
    monkeypatch.delenv("CFX_SPARK__CONF")
    with pytest.raises(SettingsError, match=r"field \"investor\".*must be JSON"):
        load_settings()
    monkeypatch.delenv("CFX_INVESTOR__RECIPIENTS")
    monkeypatch.setenv("CFX_SPARK__CONF", '{"spark.sql.shuffle.partitions": 2}')
    with pytest.raises(SettingsError, match=r"spark\.conf\.spark\.sql\.shuffle\.partitions"):
        load_settings()
