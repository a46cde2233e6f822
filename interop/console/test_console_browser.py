"""The web console in a real browser: Debian's chromium, headless, driven by
Selenium through chromium-driver, with JavaScript on and off.

Each step is checked through the OAuth endpoints, not only on the page.
Run from the repository root after `cargo build` (or `cargo test`):
    python -m pytest -q interop/console
TOLLGATE_BIN overrides the binary (default: target/debug/tollgate);
CHROMIUM and CHROMEDRIVER the browser and its driver (default: Debian's).
With TOLLGATE_TEST_SCREENSHOTS=DIR it saves the main pages as PNGs there
(that is how docs/console/*.png are made).
"""

import json
import os
import subprocess
import tempfile
import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TOLLGATE_BIN", os.path.join(ROOT, "target", "debug", "tollgate"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = os.environ.get("TOLLGATE_TEST_SCREENSHOTS")
# Never let Selenium look for a driver on the network.
os.environ["SE_OFFLINE"] = "true"


class Server:
    """The real binary on 127.0.0.1:0 in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.env = dict(os.environ)
        self.env.update(
            TOLLGATE_BIND="127.0.0.1:0",
            TOLLGATE_DB=os.path.join(self.dir.name, "tollgate.db"),
            TOLLGATE_KEYS_DIR=os.path.join(self.dir.name, "keys"),
            RUST_LOG="warn",
        )
        self.proc = subprocess.Popen(
            [BIN, "serve", "--exit-on-eof"],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line.startswith("tollgate listening on "), line
        self.base = line[len("tollgate listening on "):]

    def cli(self, *args):
        out = subprocess.run(
            [BIN, *args, "--json"], env=self.env, check=True, capture_output=True, text=True
        ).stdout
        return json.loads(out)

    def token_status(self, client_id, secret):
        r = requests.post(
            self.base + "/oauth/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
            timeout=10,
        )
        return r.status_code, r.json()

    def introspect(self, token):
        if not hasattr(self, "_introspector"):
            v = self.cli("client", "create", "--name", "introspector", "--scope", "tollgate:introspect")
            self._introspector = (v["client_id"], v["client_secret"])
        r = requests.post(
            self.base + "/oauth/introspect", auth=self._introspector, data={"token": token}, timeout=10
        )
        assert r.status_code == 200
        return r.json()["active"]

    def exchange(self, api_key):
        r = requests.post(
            self.base + "/authentication/token", json={"secret_key": api_key}, timeout=10
        )
        return r.status_code

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def browser(javascript):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture(params=[True, False], ids=["javascript", "no-javascript"])
def driver(request):
    d = browser(request.param)
    d.set_page_load_timeout(20)
    yield d
    d.quit()


def follow(d, locate):
    """Clicks what `locate` finds (a link or a submit button) and waits for
    the next page. A click that lands while the previous navigation is still
    settling can find its node gone ("does not belong to the document"):
    nothing was clicked then, so it is found and clicked again."""
    for attempt in range(5):
        old = d.find_element(By.TAG_NAME, "html")
        try:
            locate().click()
        except (StaleElementReferenceException, WebDriverException):
            if attempt == 4:
                raise
            time.sleep(0.2)
            continue
        WebDriverWait(d, 15).until(lambda _: gone(old))
        return


def gone(element):
    """Whether the element's document has been replaced. chromedriver says so
    with a stale-element error or, at times, with "Node with given id does
    not belong to the document"."""
    try:
        element.tag_name
        return False
    except (StaleElementReferenceException, WebDriverException):
        return True


def button(d, label):
    """Clicks the one button with exactly this label and waits for the page."""

    def locate():
        found = d.find_elements(By.XPATH, f"//button[normalize-space()='{label}']")
        assert len(found) == 1, f"{len(found)} buttons labelled {label!r} on {d.current_url}"
        return found[0]

    follow(d, locate)


def link(d, label):
    """Follows the link with this text."""
    follow(d, lambda: d.find_element(By.LINK_TEXT, label))


def confirm(d, label):
    """Clicks a destructive action and confirms it on the next page."""
    button(d, label)
    assert d.find_element(By.TAG_NAME, "h1").text == "Please confirm"
    button(d, label)


def text(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def shot(d, name):
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(SCREENSHOTS, name + ".png"))


def test_an_admin_handles_a_leaked_secret_in_the_console(server, driver):
    d = driver
    # Sign in with a login link from the command line.
    login = server.cli("console", "login-link", "--base-url", server.base)
    d.get(login["url"])
    button(d, "Sign in")
    assert d.current_url == server.base + "/console"
    assert text(d, "h1") == "Overview"
    cookie = d.get_cookie("tollgate_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Create client: the secret is on this page once, and it works.
    link(d, "Clients")
    link(d, "Create client")
    d.find_element(By.NAME, "name").send_keys("payments-api")
    d.find_element(By.NAME, "scopes").send_keys("payments:read payments:write")
    button(d, "Create client")
    assert text(d, "h1") == "Client created"
    secret = text(d, "#secret")
    client_id = d.find_element(By.XPATH, "//dt[.='Client id']/following-sibling::dd[1]").text
    shot(d, "secret-once")
    status, body = server.token_status(client_id, secret)
    assert status == 200, body
    held = body["access_token"]
    link(d, "Continue")
    assert secret not in d.page_source
    shot(d, "client")

    # Disable: confirmed, then the client gets no token.
    confirm(d, "Disable")
    assert text(d, "#state") == "disabled"
    status, body = server.token_status(client_id, secret)
    assert (status, body["error"]) == (401, "invalid_client")
    assert server.introspect(held) is False

    # Enable again.
    button(d, "Enable")
    assert text(d, "#state") == "enabled"
    status, body = server.token_status(client_id, secret)
    assert status == 200
    held = body["access_token"]
    assert server.introspect(held) is True

    # Revoke all tokens: the held token goes inactive.
    confirm(d, "Revoke all tokens")
    assert "revoked" in text(d, ".flash")
    assert server.introspect(held) is False

    # Create API key, exchange it, revoke it.
    d.find_element(By.NAME, "name").send_keys("deploy-bot")
    button(d, "Create API key")
    api_key = text(d, "#secret")
    assert server.exchange(api_key) == 200
    link(d, "Continue")
    assert api_key not in d.page_source
    assert text(d, "#api-keys td.state") == "active"
    confirm(d, "Revoke")
    assert text(d, "#api-keys td.state") == "revoked"
    assert server.exchange(api_key) == 401

    # The search finds the client by part of its name, ignoring case.
    link(d, "Clients")
    box = d.find_element(By.NAME, "q")
    box.send_keys("PAYMENTS")
    button(d, "Search")
    assert d.find_element(By.LINK_TEXT, client_id)
    shot(d, "clients")

    # Every action is in the audit log with the session as actor.
    link(d, "Audit log")
    d.find_element(By.NAME, "action").send_keys("client.disable")
    button(d, "Filter")
    rows = d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert len(rows) == 1
    assert rows[0].find_elements(By.TAG_NAME, "td")[2].text == "console:" + login["id"]
    d.get(server.base + "/console/audit")
    shot(d, "audit")
    link(d, "Signing keys")
    shot(d, "signing-keys")
    link(d, "Overview")
    assert int(text(d, "#tokens-issued")) >= 2
    assert int(text(d, "#failed-authentications")) >= 1
    shot(d, "overview")

    # Sign out: the cookie no longer opens a page.
    button(d, "Sign out")
    d.get(server.base + "/console/clients")
    assert d.current_url == server.base + "/console/login"
    # The link was single-use.
    d.get(login["url"])
    button(d, "Sign in")
    assert "not valid" in d.page_source
