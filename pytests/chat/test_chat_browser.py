"""The chat page in headless Chromium, with the official socket.io client, on real nodes."""

from __future__ import annotations

import re
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import REPO_ROOT, TEST_OUTPUT

from .conftest import ChatUser

WAIT_SECONDS = 15
# moment's "MMMM Do YYYY, h:mm:ss a", as the original demo showed dates.
DATE_FORMAT = re.compile(
    r"^(January|February|March|April|May|June|July|August|September|October|November|December) "
    r"([1-9]|[12]\d|3[01])(st|nd|rd|th) \d{4}, ([1-9]|1[0-2]):[0-5]\d:[0-5]\d (am|pm)$"
)


def make_browser():
    assert (REPO_ROOT / "vendor" / "socket.io.min.js").exists(), "run scripts/js-client first"
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(WAIT_SECONDS)
    return driver


@pytest.fixture
def browsers():
    opened = []

    def open_browser():
        driver = make_browser()
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        driver.quit()


def wait(driver, description, predicate, timeout=WAIT_SECONDS):
    # The pages redraw their tables and lists as events arrive, so an element a predicate found
    # may be replaced before it reads it: that is "not yet", not a failure.
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1,
                      ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: predicate(d))
    except Exception:
        raise AssertionError(f"page never reached: {description}; status: "
                             f"{driver.find_element(By.ID, 'status').text!r}") from None


def open_chat(driver, url, name, room="general"):
    driver.get(f"{url}/?name={name}&room={room}")
    wait(driver, "online", lambda d: d.find_element(By.ID, "status").text.startswith("online"))
    wait(driver, "welcome", lambda d: d.find_element(By.ID, "room-title").text == f"#{room}")


def send(driver, text):
    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def texts(driver):
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#messages .message .text")]


def test_two_users_chat_both_ways_with_dates_and_delivery(chat_node, browsers):
    alice, bob = browsers(), browsers()
    open_chat(alice, chat_node.url, "Alice", room="browser")
    open_chat(bob, chat_node.url, "Bob", room="browser")

    send(alice, "Hello Bob")
    wait(bob, "Bob sees Alice", lambda d: "Hello Bob" in texts(d))
    wait(alice, "delivered mark", lambda d: d.find_elements(By.CSS_SELECTOR, ".message .delivery.delivered"))
    send(bob, "Hi Alice")
    wait(alice, "Alice sees Bob", lambda d: "Hi Alice" in texts(d))

    dates = [element.text for element in bob.find_elements(By.CSS_SELECTOR, "#messages .message .date")]
    assert dates and all(DATE_FORMAT.match(date) for date in dates), dates
    authors = [element.text for element in alice.find_elements(By.CSS_SELECTOR, "#messages .message .author")]
    assert authors == ["Alice", "Bob"]

    members = lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#members li")]
    wait(alice, "presence shows both", lambda d: members(d) == ["Alice", "Bob"])

    # History: someone arriving later sees the conversation.
    carol = browsers()
    open_chat(carol, chat_node.url, "Carol", room="browser")
    wait(carol, "history", lambda d: texts(d)[:2] == ["Hello Bob", "Hi Alice"])
    TEST_OUTPUT.mkdir(exist_ok=True)
    alice.save_screenshot(str(TEST_OUTPUT / "chat.png"))


def test_markup_is_shown_as_text(chat_node, browsers):
    viewer = browsers()
    open_chat(viewer, chat_node.url, "Viewer", room="xss")
    attacker = ChatUser(chat_node.url, name="Mallory", room="xss")
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
    assert attacker.send(payload)["ok"]
    wait(viewer, "payload arrives", lambda d: payload in texts(d))
    assert viewer.execute_script("return window.pwned === undefined")
    assert viewer.find_elements(By.CSS_SELECTOR, "#messages img, #messages script, #messages b") == []
    attacker.close()


def test_a_dropped_connection_gets_what_it_missed(chat_node, browsers):
    viewer = browsers()
    open_chat(viewer, chat_node.url, "Dropper", room="drop")
    sender = ChatUser(chat_node.url, name="Sender", room="drop")
    assert sender.send("before the drop")["ok"]
    wait(viewer, "first message", lambda d: "before the drop" in texts(d))

    # Cut the connection for about three seconds (the client reconnects by itself).
    viewer.execute_script("""
        const manager = window.chatSocket.io;
        manager.reconnectionDelay(3000); manager.reconnectionDelayMax(3000); manager.randomizationFactor(0);
        manager.engine.close();
    """)
    wait(viewer, "offline", lambda d: not d.find_element(By.ID, "status").text.startswith("online"), timeout=5)
    for i in range(3):
        assert sender.send(f"while away {i}")["ok"]
    wait(viewer, "back online", lambda d: d.find_element(By.ID, "status").text == "online (recovered)", timeout=10)
    wait(viewer, "missed messages", lambda d: texts(d) == ["before the drop"] + [f"while away {i}" for i in range(3)])
    sender.close()
