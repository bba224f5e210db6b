"""The official Socket.IO JS client (4.8.1) in headless Chromium against the real server.

A small page (pytests/browser/page/) plus vendor/socket.io.min.js (fetched by scripts/js-client)
is served from a python http.server on its own loopback port, so the page talks to the
server cross-origin, as a real deployment behind another origin would. The page records what
happened in window.results; the test reads it and triggers a room broadcast from python.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from conftest import REPO_ROOT, TEST_OUTPUT, free_loopback_port
from interop.clientkit import TRANSPORT_MODES, RecordingClient

PAGE_DIR = Path(__file__).resolve().parent / "page"
JS_CLIENT = REPO_ROOT / "vendor" / "socket.io.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 15


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory):
    assert JS_CLIENT.exists(), f"{JS_CLIENT} is missing: run scripts/js-client"
    site = tmp_path_factory.mktemp("browser-site")
    for source in PAGE_DIR.iterdir():
        shutil.copy(source, site / source.name)
    shutil.copy(JS_CLIENT, site / "socket.io.min.js")
    port = free_loopback_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    # An explicit driver path: selenium must never try to download one.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def read_results(driver) -> dict:
    return driver.execute_script("return JSON.parse(JSON.stringify(window.results || null));")


def wait_for(driver, description: str, predicate) -> dict:
    try:
        WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(
            lambda d: (lambda r: r is not None and predicate(r))(read_results(d))
        )
    except Exception:
        raise AssertionError(f"page never reached: {description}; results: {json.dumps(read_results(driver))}") from None
    return read_results(driver)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_official_js_client_in_chromium(browser, page_origin, sio_url, transport):
    room = f"browser-{transport}-{uuid.uuid4().hex[:6]}"
    query = urllib.parse.urlencode({"server": sio_url, "transport": transport, "room": room})
    browser.get(f"{page_origin}/index.html?{query}")

    results = wait_for(
        browser,
        "connected, acked and joined",
        lambda r: r["errors"] or (r["joined"] and r["ack"] and r["binaryAck"] and r["clientAckReceived"] and r["whoami"]),
    )
    assert results["errors"] == [], f"page results: {json.dumps(results)}"
    assert results["connected"] is True
    assert results["transport"] == transport
    assert results["auth"] == {"token": "browser", "from": "chromium"}
    assert results["ack"] == [{"b": 1, "a": [1, 2], "big": 9007199254740991}, "text"]
    assert results["binaryAck"] == [0, 1, 2, 253, 254, 255]
    assert results["whoami"]["nsp"] == "/"
    assert results["whoami"]["sid"] == results["whoami"]["clientId"]
    assert results["serverAckRequest"] == ["browser asks"]
    assert results["clientAckReceived"] == ["from-browser", "browser asks"]
    assert results["joined"] == room

    # A python client outside the room broadcasts to it; the page must get it exactly once.
    sender = RecordingClient()
    try:
        sender.connect(sio_url, TRANSPORT_MODES[0])
        assert sender.call("broadcast", room, "from python", {"n": 7}) is True
    finally:
        sender.disconnect()
    results = wait_for(browser, "room broadcast received", lambda r: r["errors"] or r["broadcasts"])
    time.sleep(0.3)  # a duplicate delivery would show up here
    results = read_results(browser)
    assert results["broadcasts"] == [["from python", {"n": 7}]]
    assert results["errors"] == []
    # Still on the transport it was restricted to, and still connected.
    assert browser.execute_script("return window.socket.connected && window.socket.io.engine.transport.name") == transport

    TEST_OUTPUT.mkdir(exist_ok=True)
    screenshot = TEST_OUTPUT / f"browser-{transport}.png"
    assert browser.save_screenshot(str(screenshot)), "screenshot failed"
    browser.execute_script("window.socket.disconnect();")
