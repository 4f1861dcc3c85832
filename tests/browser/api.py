"""The public API, for what a journey needs set up beforehand (a ticket to check in), through
the same JSON routes any client uses."""

import datetime
import json
import time
import urllib.parse
import urllib.request
import uuid

DEMO_PASSWORD = "eventhive-demo"


def call(base_url, method, path, body=None, token=None, key=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if key:
        headers["idempotency-key"] = key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def login(base_url, email, password=DEMO_PASSWORD):
    return call(base_url, "POST", "/v1/auth/login", {"email": email, "password": password})["access_token"]


def buy_ticket_code(base_url, token, search):
    """Buys one ticket of the first ticket type of the event found by `search`; its code."""
    return buy_ticket(base_url, token, search)[1]


def buy_ticket(base_url, token, search):
    """Buys one ticket of the first ticket type of the event found by `search`: the order's id
    and the ticket's code."""
    event = call(base_url, "GET", "/v1/events?" + urllib.parse.urlencode({"q": search}))["items"][0]
    items = [{"ticket_type_id": event["ticket_types"][0]["id"], "quantity": 1}]
    order = call(base_url, "POST", "/v1/orders", {"event_id": event["id"], "items": items}, token, str(uuid.uuid4()))
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    call(base_url, "POST", f"/v1/orders/{order['id']}/payment", {"card": card}, token, str(uuid.uuid4()))
    # Tickets are issued just after the payment (API.md: within seconds): ask until they are.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tickets = call(base_url, "GET", f"/v1/orders/{order['id']}", token=token)["tickets"]
        if tickets:
            return order["id"], tickets[0]["code"]
        time.sleep(0.2)
    raise AssertionError("the paid order's ticket was never issued")


def wait_for_mail(base_url, to):
    """The dev inbox's emails to `to`, once there is one (emails are sent after the fact)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mails = call(base_url, "GET", "/dev/mail?" + urllib.parse.urlencode({"to": to}))
        if mails:
            return mails
        time.sleep(0.2)
    raise AssertionError(f"no email to {to} in the dev inbox")


def register(base_url, email, password, display_name):
    """A new account; its access token."""
    call(base_url, "POST", "/v1/auth/register", {"email": email, "password": password, "display_name": display_name})
    return login(base_url, email, password)


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def seconds_from_now(seconds):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


def on_sale_event(base_url, organizer_token, title, capacity=100, price_minor=3000):
    """A new event of the organizer's first organization, with one ticket type ("Standing"),
    published; its id."""
    organization = call(base_url, "GET", "/v1/me", token=organizer_token)["organizations"][0]["id"]
    # Long after the demo events, so that the list of events (and its screenshot) shows them first.
    starts_at = seconds_from_now(200 * 24 * 3600)
    body = {
        "organization_id": organization,
        "title": title,
        "description": "Set up by the browser journeys.",
        "venue": {"name": "Paradiso", "city": "Amsterdam", "country": "NL"},
        "starts_at": rfc3339(starts_at),
        "ends_at": rfc3339(starts_at + datetime.timedelta(hours=3)),
        "currency": "EUR",
        "max_tickets_per_order": 4,
    }
    event = call(base_url, "POST", "/v1/events", body, organizer_token)
    ticket_type = {"name": "Standing", "price_minor": price_minor, "capacity": capacity}
    call(base_url, "POST", f"/v1/events/{event['id']}/ticket-types", ticket_type, organizer_token)
    call(base_url, "POST", f"/v1/events/{event['id']}/publish", None, organizer_token)
    return event["id"]


def waiting_room(base_url, organizer_token, event_id, opens_at, admit_per_minute):
    body = {"opens_at": rfc3339(opens_at), "admit_per_minute": admit_per_minute}
    return call(base_url, "PUT", f"/v1/events/{event_id}/waiting-room", body, organizer_token)


def join_queue(base_url, token, event_id):
    return call(base_url, "POST", f"/v1/events/{event_id}/queue", {}, token)


def ticket_status(base_url, token, code):
    """The status of the caller's ticket with this code (`valid`, `checked_in`, ...)."""
    tickets = call(base_url, "GET", "/v1/me/tickets?page_size=100", token=token)["items"]
    return next(t["status"] for t in tickets if t["code"] == code)
