"""nginx reference configs: what they listen on, where they send, and where their files go."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import reference


def test_the_proxy_reference_keeps_a_pool_and_sends_the_upstream_its_own_host(tmp_path: Path) -> None:
    text = reference.nginx_config("ref-nginx", 8001, 9002, tmp_path)
    assert "listen 127.0.0.1:8001;" in text
    assert "server 127.0.0.1:9002; keepalive 64;" in text
    assert "proxy_set_header Host 127.0.0.1:9002;" in text and "proxy_buffering off;" in text
    assert "master_process off;" in text  # one process: its CPU accounting is the proxy's whole
    assert str(tmp_path / "nginx-proxy") in text  # temp files in the run's folder, not /var


def test_the_static_reference_answers_a_canned_result_without_an_upstream(tmp_path: Path) -> None:
    text = reference.nginx_config("ref-static", 8001, 9002, tmp_path)
    assert "return 200" in text and reference.CANNED_RESULT in text
    assert "9002" not in text


def test_an_unknown_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ref-apache"):
        reference.nginx_config("ref-apache", 1, 2, tmp_path)


def test_without_nginx_the_reason_to_skip_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference.shutil, "which", lambda _: None)
    assert reference.skip_reason() == "nginx is not installed (apt-get install nginx-light)"
