"""The buyer's journey through the storefront in a real Chromium: register, find the event by
searching, hold two tickets, have a card declined (explained in words), pay with the test card
that succeeds, and see the two tickets' QR codes under "My tickets" and the confirmation with
the same two codes in the dev inbox.

Every step waits for what the page must show (WebDriverWait), never for a fixed time.
"""

import re
import uuid

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

import api

# Generous: a debug build on a busy 2-core machine; a passing step returns as soon as it can.
TIMEOUT = 30
DECLINED = "4000000000000002"
SUCCEEDS = "4242424242424242"


def wait(browser):
    return WebDriverWait(browser, TIMEOUT)


def heading_is(browser, text):
    wait(browser).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), text))


def fill(browser, field_id, value):
    field = wait(browser).until(EC.element_to_be_clickable((By.ID, field_id)))
    field.clear()
    field.send_keys(value)


def submit(browser, form_css):
    """Clicks the form's submit button and waits for the page it leads to."""
    button = browser.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]")
    button.click()
    wait(browser).until(lambda _: gone(button))


def gone(element):
    """Whether the element left the page. Chromium's driver says so in two ways: stale, or,
    asked while the next page replaces the document, "does not belong to the document"."""
    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise


def labelled(browser, label_text):
    """The input that the label with this text is for: found as a screen reader would."""
    label = browser.find_element(By.XPATH, f"//label[normalize-space()='{label_text}']")
    return browser.find_element(By.ID, label.get_attribute("for"))


def pay(browser, number):
    fill(browser, "number", number)
    fill(browser, "exp_month", "12")
    fill(browser, "exp_year", "2030")
    fill(browser, "cvc", "123")
    submit(browser, "form.card")


def test_a_buyer_registers_finds_an_event_and_buys_two_tickets(browser, base_url, screenshot):
    browser.get(base_url + "/")
    heading_is(browser, "Events")
    screenshot("events")

    browser.find_element(By.LINK_TEXT, "Register").click()
    heading_is(browser, "Register")
    fill(browser, "display_name", "Browser Buyer")
    email = f"buyer-{uuid.uuid4().hex[:12]}@example.test"
    fill(browser, "email", email)
    fill(browser, "password", "a-long-enough-password")
    submit(browser, "form.account")
    # Signed in: the navigation offers to log out.
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//nav//button[normalize-space()='Log out']")))

    fill(browser, "q", "canal")
    submit(browser, "form.search")
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "results"), "Results"))
    results = browser.find_elements(By.CSS_SELECTOR, "ul.events h3")
    assert [r.text for r in results] == ["Jazz by the Canal"]
    browser.find_element(By.LINK_TEXT, "Jazz by the Canal").click()
    heading_is(browser, "Jazz by the Canal")
    screenshot("event")

    quantity = labelled(browser, "Quantity of Standing")
    quantity.clear()
    quantity.send_keys("2")
    submit(browser, "form.buy")
    heading_is(browser, "Checkout")
    # The hold counts down in minutes and seconds.
    wait(browser).until(lambda b: re.fullmatch(r"\d+:\d\d", b.find_element(By.CSS_SELECTOR, "[data-countdown]").text))
    assert "50.00 EUR" in browser.find_element(By.CSS_SELECTOR, "table.summary tfoot").text
    screenshot("checkout")

    pay(browser, DECLINED)
    alert = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
    assert "Your card was declined" in alert.text
    assert "Nothing was charged" in alert.text
    heading_is(browser, "Checkout")
    screenshot("declined")

    pay(browser, SUCCEEDS)
    heading_is(browser, "Your tickets")
    # Tickets are issued just after the payment; the page reloads itself until they are there.
    wait(browser).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "svg.qr")) == 2)

    browser.find_element(By.LINK_TEXT, "My tickets").click()
    heading_is(browser, "My tickets")
    codes = wait(browser).until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "svg.qr")))
    assert len(codes) == 2
    for code in codes:
        assert code.get_attribute("role") == "img"
        assert code.get_attribute("aria-label").startswith("QR code of ticket ")
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "article.ticket h2")]
    assert titles == ["Jazz by the Canal: Standing"] * 2
    screenshot("my-tickets")
    ticket_codes = browser.execute_script("return [...document.querySelectorAll('p.code')].map(e => e.textContent)")
    assert len(set(ticket_codes)) == 2

    browser.find_element(By.LINK_TEXT, "My orders").click()
    heading_is(browser, "My orders")
    assert "paid" in browser.find_element(By.CSS_SELECTOR, "ul.orders").text

    # The confirmation with both tickets is in the dev inbox.
    mail = api.wait_for_mail(base_url, email)[0]
    assert all(code in mail["body"] for code in ticket_codes), mail["body"]
    assert len([a for a in mail["attachments"] if a["content_type"] == "image/png"]) == 2, mail


def test_a_visitor_is_asked_to_log_in_before_buying(browser, base_url):
    browser.get(base_url + "/")
    heading_is(browser, "Events")
    browser.find_element(By.LINK_TEXT, "RustConf Europe 2027").click()
    heading_is(browser, "RustConf Europe 2027")
    assert browser.find_elements(By.CSS_SELECTOR, "form.buy") == []
    # The page's own link, which comes back here (the navigation's goes to the events).
    browser.find_element(By.CSS_SELECTOR, "main a[href^='/login?next=']").click()
    heading_is(browser, "Log in")
    fill(browser, "email", "buyer@eventhive.dev")
    fill(browser, "password", "not-the-password")
    submit(browser, "form.account")
    alert = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
    assert "don't match an account" in alert.text
    fill(browser, "password", "eventhive-demo")
    submit(browser, "form.account")
    # Back on the event, now with the form that holds tickets.
    heading_is(browser, "RustConf Europe 2027")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.buy")))
