"""The accessibility check: axe-core, injected into each main page as a visitor, a buyer, door
staff and an organizer see it, finds no `serious` or `critical` violation.

axe-core is the exact version pinned by tests/browser/package-lock.json, which
scripts/browser-tests.sh installs with `npm ci` and names in EVENTHIVE_AXE_JS; nothing is
downloaded here. The check fails listing every violation found, page by page.
"""

import os
import pathlib
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

import api
from test_door import check_in
from test_storefront import fill, heading_is, labelled, submit, wait

# What fails the check; `moderate` and `minor` findings are printed but do not.
FAILING = {"serious", "critical"}

RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]})
  .then(result => done(result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary),
  }))))
  .catch(error => done([{id: "axe-failed", impact: "critical", help: String(error), nodes: []}]));
"""


@pytest.fixture(scope="module")
def axe_source():
    path = os.environ.get("EVENTHIVE_AXE_JS")
    if not path or not pathlib.Path(path).is_file():
        pytest.fail("EVENTHIVE_AXE_JS does not name axe.min.js: run scripts/browser-tests.sh")
    return pathlib.Path(path).read_text()


class Audit:
    """Runs axe on pages and keeps what it found, so one run reports every page."""

    def __init__(self, browser, source):
        self.browser = browser
        self.source = source
        self.found = []

    def check(self, name):
        self.browser.set_script_timeout(60)
        # Injected through the driver, which the pages' Content-Security-Policy does not govern.
        self.browser.execute_script(self.source)
        for violation in self.browser.execute_async_script(RUN_AXE):
            self.found.append((name, self.browser.current_url, violation))

    def report(self):
        lines = []
        for name, url, v in self.found:
            lines.append(f"{name} ({url}): [{v['impact']}] {v['id']}: {v['help']}")
            lines.extend(f"    {node}" for node in v["nodes"])
        return "\n".join(lines)

    def failing(self):
        return [f for f in self.found if f[2]["impact"] in FAILING]


def log_in(browser, base_url, email, password=api.DEMO_PASSWORD):
    browser.delete_all_cookies()
    browser.get(base_url + "/login")
    heading_is(browser, "Log in")
    fill(browser, "email", email)
    fill(browser, "password", password)
    submit(browser, "form.account")
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//nav//button[normalize-space()='Log out']")))


def test_the_main_pages_have_no_serious_accessibility_violations(browser, base_url, axe_source):
    audit = Audit(browser, axe_source)
    organizer = api.login(base_url, "organizer@eventhive.dev")
    jazz = api.call(base_url, "GET", "/v1/events?q=canal")["items"][0]["id"]
    # An event whose waiting room opens in an hour: its page counts down, and so does the queue.
    queued = api.on_sale_event(base_url, organizer, f"Accessible Queue {uuid.uuid4().hex[:8]}")
    api.waiting_room(base_url, organizer, queued, api.seconds_from_now(3600), admit_per_minute=60)

    # A visitor.
    browser.get(base_url + "/")
    heading_is(browser, "Events")
    audit.check("events")
    browser.get(f"{base_url}/events/{jazz}")
    heading_is(browser, "Jazz by the Canal")
    audit.check("event, signed out")
    browser.get(base_url + "/login")
    heading_is(browser, "Log in")
    audit.check("login")
    browser.get(base_url + "/register")
    heading_is(browser, "Register")
    audit.check("register")

    # A buyer: an event with its form, the waiting room, checkout, their tickets.
    email = f"a11y-{uuid.uuid4().hex[:12]}@example.test"
    buyer = api.register(base_url, email, "a-long-enough-password", "Accessible Buyer")
    log_in(browser, base_url, email, "a-long-enough-password")
    browser.get(f"{base_url}/events/{jazz}")
    heading_is(browser, "Jazz by the Canal")
    audit.check("event, signed in")
    browser.get(f"{base_url}/events/{queued}/queue")
    heading_is(browser, "Waiting room")
    audit.check("waiting room, not joined")
    submit(browser, "#place form")
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "place"), "You're in"))
    audit.check("waiting room, joined")
    browser.get(f"{base_url}/events/{jazz}")
    quantity = labelled(browser, "Quantity of Standing")
    quantity.clear()
    quantity.send_keys("1")
    submit(browser, "form.buy")
    heading_is(browser, "Checkout")
    audit.check("checkout")
    api.buy_ticket_code(base_url, buyer, "canal")
    browser.get(base_url + "/my/tickets")
    heading_is(browser, "My tickets")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "svg.qr")))
    audit.check("my tickets")
    browser.get(base_url + "/my/orders")
    heading_is(browser, "My orders")
    audit.check("my orders")

    # Door staff, with an answer on the page.
    code = api.buy_ticket_code(base_url, buyer, "canal")
    log_in(browser, base_url, "door@eventhive.dev")
    browser.get(base_url + "/door")
    heading_is(browser, "Door")
    audit.check("door, events")
    browser.get(f"{base_url}/door/{jazz}")
    heading_is(browser, "Door: Jazz by the Canal")
    audit.check("door")
    check_in(browser, code)
    audit.check("door, valid")
    check_in(browser, code)
    audit.check("door, already checked in")

    # The organizer's live dashboard.
    log_in(browser, base_url, "organizer@eventhive.dev")
    browser.get(f"{base_url}/manage/events/{jazz}")
    heading_is(browser, "Live: Jazz by the Canal")
    audit.check("dashboard")

    print(audit.report() or "axe found nothing")
    assert not audit.failing(), "serious or critical accessibility violations:\n" + audit.report()
