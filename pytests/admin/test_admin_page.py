"""The admin page in headless Chromium across two chat nodes on RabbitMQ.

The page is served by node A; a python-socketio user is connected to node B. The page must
show both nodes, find B's user (and say it is on B), send a message to its room as the
operator, show the packet rate chart move while the user talks, and disconnect the user;
all of it goes through the cluster adapter. Screenshots: test-output/admin-*.png.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from selenium.webdriver.common.by import By

from chat.conftest import ChatUser, broker_reachable, start_chat, wait_ready
from chat.test_chat_browser import make_browser, wait
from conftest import TEST_OUTPUT

ADMIN_TOKEN = "admin-page-token-0123456789abcdef"

pytestmark = pytest.mark.skipif(
    not broker_reachable(), reason="no RabbitMQ on 127.0.0.1:5672 (scripts/test starts one; in CI this test must run)"
)


@pytest.fixture(scope="module")
def two_nodes():
    # A vhost of its own: nodes other suites killed a moment ago stay cluster members until
    # their heartbeats expire, and would slow every cluster-wide request of the page.
    suffix = os.getpid()
    vhost = f"sio-admin-page-{suffix}"
    made = subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True, timeout=30).returncode == 0
    made = made and subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                                   capture_output=True, timeout=30).returncode == 0
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}" if made else os.environ["AMQP_URL"]
    env = {"ADMIN_TOKEN": ADMIN_TOKEN, "AMQP_URL": url}
    nodes = []
    try:
        for letter in "ab":
            nodes.append(start_chat(f"chat-admin-{letter}", "--adapter", "rabbitmq", "--node-name", f"admin-{letter}-{suffix}",
                                    "--rate-limit", "100", "--rate-burst", "200", env=env))
        for node in nodes:
            wait_ready(node)
        yield nodes
        for node in nodes:
            assert node.is_alive(), f"a node died during the test:\n{node.tail()}"
    finally:
        for node in nodes:
            node.stop()
        if made:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=30)


def rows(driver, table):
    return driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")


def test_admin_on_node_a_sees_and_acts_on_a_client_of_node_b(two_nodes):
    node_a, node_b = two_nodes
    name_b = f"admin-b-{os.getpid()}"
    dora = ChatUser(node_b.url, name="Dora", room="support")
    dora.wait_for(lambda: dora.welcomes)
    driver = make_browser()
    try:
        driver.get(f"{node_a.url}/admin?token={ADMIN_TOKEN}")
        wait(driver, "online", lambda d: d.find_element(By.ID, "status").text == "online")
        assert not driver.find_element(By.ID, "login").is_displayed()
        wait(driver, "both nodes reporting", lambda d: sum(
            1 for r in rows(d, "nodes") if "ready" == r.find_elements(By.TAG_NAME, "td")[3].text) == 2, timeout=20)
        wait(driver, "Dora listed on node B", lambda d: any(
            r.find_elements(By.TAG_NAME, "td")[0].text == "Dora" and r.find_elements(By.TAG_NAME, "td")[1].text == name_b
            for r in rows(d, "sockets")))
        wait(driver, "#support in the rooms", lambda d: any(r.get_attribute("data-room") == "support" for r in rows(d, "rooms")))

        # Send to Dora's room as the operator, from the page on node A.
        room_box = driver.find_element(By.ID, "send-room")
        room_box.clear()
        room_box.send_keys("support")
        driver.find_element(By.ID, "send-text").send_keys("Hello from the operator")
        driver.find_element(By.CSS_SELECTOR, "#send-form button").click()
        dora.wait_for(lambda: any(m["text"] == "Hello from the operator" and m["name"] == "operator" for m in dora.messages),
                      timeout=10)

        # Traffic on node B moves node B's line: its out/s cell and the chart's peak.
        peak_before = float(driver.find_element(By.ID, "chart").get_attribute("data-peak"))
        for index in range(40):
            dora.send(f"line {index}")
            time.sleep(0.05)
        wait(driver, "node B's rate", lambda d: any(
            r.get_attribute("data-node") == name_b and float(r.find_element(By.CSS_SELECTOR, ".rate-in").text) > 0
            for r in rows(d, "nodes")), timeout=10)
        wait(driver, "the chart's peak", lambda d: float(d.find_element(By.ID, "chart").get_attribute("data-peak")) > peak_before)
        assert int(driver.find_element(By.ID, "chart").get_attribute("data-points")) > 0
        events = driver.find_element(By.ID, "events").text
        assert "connect" in events and "Dora" in events
        TEST_OUTPUT.mkdir(exist_ok=True)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(TEST_OUTPUT / "admin-page.png"))

        # Disconnect Dora (on node B) from the page on node A.
        dora_row = next(r for r in rows(driver, "sockets") if r.find_elements(By.TAG_NAME, "td")[0].text == "Dora")
        dora_row.find_element(By.CSS_SELECTOR, "button.disconnect").click()
        deadline = time.monotonic() + 10
        while dora.client.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not dora.client.connected, "Dora is still connected"
        try:
            wait(driver, "Dora gone from the list", lambda d: all(
                r.find_elements(By.TAG_NAME, "td")[0].text != "Dora" for r in rows(d, "sockets")))
        except AssertionError as error:
            listed = [r.text for r in rows(driver, "sockets")]
            raise AssertionError(f"{error}; sockets: {listed}; events: {driver.find_element(By.ID, 'events').text}") from None
        driver.save_screenshot(str(TEST_OUTPUT / "admin-page-after-disconnect.png"))
    finally:
        driver.quit()
        dora.close()


def test_the_admin_page_asks_for_a_token_when_refused(two_nodes):
    driver = make_browser()
    try:
        driver.get(f"{two_nodes[0].url}/admin?token=wrong")
        wait(driver, "the login form", lambda d: d.find_element(By.ID, "login").is_displayed())
        assert not driver.find_element(By.ID, "dashboard").is_displayed()
        assert "ADMIN_TOKEN" in driver.find_element(By.ID, "login-error").text
        driver.find_element(By.ID, "token-input").send_keys(ADMIN_TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait(driver, "online", lambda d: d.find_element(By.ID, "status").text == "online")
        wait(driver, "the dashboard instead of the form", lambda d: d.find_element(By.ID, "dashboard").is_displayed()
             and not d.find_element(By.ID, "login").is_displayed())
    finally:
        driver.quit()
