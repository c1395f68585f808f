"""A broker URL is shown without its password (cfx serve's first line, /healthz, cfx health)."""

from cfxlib.core.urls import without_password


def test_a_password_is_masked_and_the_rest_kept():
    assert without_password("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert without_password("rediss://cfx:p%40ss@redis.example:6380/2") == "rediss://cfx:***@redis.example:6380/2"
    assert without_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
