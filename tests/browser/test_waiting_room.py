"""A buyer's on-sale in a real Chromium: an event whose waiting room opens in a few seconds, the
countdown to the opening, a place in the queue that moves by itself, "your turn", two tickets
bought and their QR codes, and the confirmation with the same codes in the dev inbox.

The room is set up through the API with a fixed admission rate, and three other buyers join it
before the opening. The buyer of the journey joins just after the opening, so stands behind
those three: an early arrival's place is drawn at random and could be the first, admitted at
once, and the journey must see a place before the turn. Every step waits for what the page must
show, never for a fixed time.
"""

import re
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

import api
from test_accessibility import log_in
from test_storefront import SUCCEEDS, heading_is, labelled, pay, submit, wait

# Seconds to the opening: enough for the buyer to find the event and see it count down.
OPENS_IN = 15
# One buyer every five seconds: the three ahead take about ten once the room opens.
ADMIT_PER_MINUTE = 12
PASSWORD = "a-long-enough-password"


def place(browser):
    return browser.find_element(By.ID, "place").text


def test_a_buyer_waits_for_the_opening_then_for_their_turn_and_buys_two_tickets(browser, base_url, screenshot):
    email = f"queue-{uuid.uuid4().hex[:12]}@example.test"
    api.register(base_url, email, PASSWORD, "Queue Buyer")
    log_in(browser, base_url, email, PASSWORD)

    organizer = api.login(base_url, "organizer@eventhive.dev")
    word = uuid.uuid4().hex[:8]
    title = f"Midnight Premiere {word}"
    event_id = api.on_sale_event(base_url, organizer, title)
    api.waiting_room(base_url, organizer, event_id, api.seconds_from_now(OPENS_IN), ADMIT_PER_MINUTE)
    for n in range(3):
        early = api.register(base_url, f"early-{n}-{word}@example.test", PASSWORD, f"Early {n}")
        api.join_queue(base_url, early, event_id)

    # The buyer finds the event, which counts down to its opening.
    browser.get(base_url + "/")
    heading_is(browser, "Events")
    browser.find_element(By.ID, "q").send_keys(word)
    submit(browser, "form.search")
    browser.find_element(By.LINK_TEXT, title).click()
    heading_is(browser, title)
    countdown = "section.room [data-countdown]"
    wait(browser).until(lambda b: re.fullmatch(r"\d+:\d\d", b.find_element(By.CSS_SELECTOR, countdown).text))
    browser.find_element(By.LINK_TEXT, "Go to the waiting room").click()
    heading_is(browser, f"Waiting room: {title}")
    assert "You are not in the queue yet" in place(browser)
    wait(browser).until(lambda b: re.fullmatch(r"\d+:\d\d", b.find_element(By.CSS_SELECTOR, "#place [data-countdown]").text))
    screenshot("waiting-room-countdown")

    # The page follows the opening by itself; then the buyer joins, behind the early three.
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "place"), "The sale is open"))
    submit(browser, "#place form")
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "place"), "Your place in the queue"))
    position = int(browser.find_element(By.CSS_SELECTOR, "#place .position strong").text)
    assert position == 4, place(browser)
    assert "ahead of you" in place(browser) and "Estimated wait" in place(browser), place(browser)
    screenshot("waiting-room")

    # Admitted: the page says so without a reload, with the time the turn lasts.
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "place"), "It's your turn!"))
    wait(browser).until(lambda b: re.search(r"\d+:\d\d", b.find_element(By.CSS_SELECTOR, "#place [data-countdown]").text))
    screenshot("waiting-room-turn")
    browser.find_element(By.LINK_TEXT, "Choose your tickets").click()
    heading_is(browser, title)
    quantity = labelled(browser, "Quantity of Standing")
    quantity.clear()
    quantity.send_keys("2")
    submit(browser, "form.buy")
    heading_is(browser, "Checkout")
    assert "60.00 EUR" in browser.find_element(By.CSS_SELECTOR, "table.summary tfoot").text

    pay(browser, SUCCEEDS)
    heading_is(browser, "Your tickets")
    wait(browser).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "svg.qr")) == 2)
    codes = browser.execute_script("return [...document.querySelectorAll('p.code')].map(e => e.textContent)")
    assert len(set(codes)) == 2, codes

    mail = api.wait_for_mail(base_url, email)[0]
    assert all(code in mail["body"] for code in codes), mail["body"]
