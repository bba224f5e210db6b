"""Secrets and configuration: a password never shows, and bad configuration stops the node
with one line naming the option."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from chat.conftest import broker_reachable, chat_binary, start_chat


def run_chat_expecting_exit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(chat_binary()), "--port", "0", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30)


def test_an_invalid_percent_escape_in_the_password_is_never_shown():
    done = run_chat_expecting_exit([], {"AMQP_URL": "amqp://chat:s3cr%zt@127.0.0.1:5672"})
    output = done.stdout + done.stderr
    assert done.returncode == 64, output
    assert "s3cr" not in output, output
    assert "AMQP_URL" in output and "chat:***@" in output, output
    assert len(output.strip().splitlines()) == 1, output


def test_a_refused_password_is_not_on_readyz_metrics_or_in_the_log():
    if not broker_reachable():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    node = start_chat("hostile-secret", "--adapter", "rabbitmq",
                      env={"AMQP_URL": "amqp://chat:s3cretpw@127.0.0.1:5672", "LOG_LEVEL": "debug"})
    try:
        deadline = time.monotonic() + 10
        readyz = requests.get(node.url + "/readyz", timeout=2)
        while "not reachable" not in readyz.text and time.monotonic() < deadline:
            time.sleep(0.3)
            readyz = requests.get(node.url + "/readyz", timeout=2)
        assert readyz.status_code == 503
        assert "not reachable" in readyz.text and "chat:***@" in readyz.text, readyz.text
        for text in (readyz.text, requests.get(node.url + "/metrics", timeout=2).text, node.tail(200)):
            assert "s3cretpw" not in text
    finally:
        node.stop()
    assert "s3cretpw" not in node.log_path.read_text()


@pytest.mark.parametrize("env, option", [
    ({"RATE_LIMIT": "0"}, "RATE_LIMIT"),
    ({"MAX_MESSAGE_BYTES": "0"}, "MAX_MESSAGE_BYTES"),
    ({"HISTORY_BYTES": "12"}, "HISTORY_BYTES"),
    ({"TYPING_BURST": "lots"}, "TYPING_BURST"),
])
def test_bad_configuration_stops_the_node_with_one_line_naming_the_option(env, option):
    done = run_chat_expecting_exit(["--adapter", "memory"], env)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 64, output
    assert len(output.splitlines()) == 1 and option in output, output
    assert "Fatal error" not in output and "precondition" not in output.lower()
