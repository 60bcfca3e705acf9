"""Coming back from the preferences page: who unsubscribed clicks "Subscribe again"; a bounced
or complained address needs a fresh double opt-in (one confirmation email, asked for from the
page, and its link opened), and nothing on the page turns it active or softens it. Someone
erased on request comes back by signing up and opening the link, as a new reader."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest

from digest.app import people
from digest.app.readers import COME_BACK_BY_EMAIL
from subscribers.models import Status
from subscribers.tokens import Purpose
from tests.conftest import Live
from tests.digest.web.conftest import csrf_of


def preferences_of(live: Live, email: str, status: Status) -> str:
    subscriber = live.add(email, {"backend", "data"}, status)
    return f"/preferences/{live.project.signer().sign(Purpose.MANAGE, subscriber)}"


def act(client: httpx.Client, url: str, action: str) -> httpx.Response:
    return client.post(url, data={"csrf": csrf_of(client.get(url)), "action": action})


def confirmation_links(live: Live, email: str) -> list[str]:
    live.settle()
    links = []
    for path in sorted(live.outbox.glob(f"{email}-*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        found = re.search(r"http://localhost:8000(/confirm/\S+)", body.get_content())
        assert found
        links.append(found.group(1))
    return links


def test_who_unsubscribed_comes_back_with_a_click(live: Live) -> None:
    url = preferences_of(live, "left@example.com", Status.UNSUBSCRIBED)
    with live.client() as client:
        page = client.get(url)
        assert "Subscribe again" in page.text and "confirmation link" not in page.text
        assert act(client, url, "resubscribe").status_code == 303
    assert live.subscriber("left@example.com").status is Status.ACTIVE
    assert confirmation_links(live, "left@example.com") == []


@pytest.mark.parametrize(
    ("status", "why"),
    [(Status.BOUNCED, "bounced"), (Status.COMPLAINED, "reported as spam")],
)
def test_a_suppressed_address_comes_back_only_by_a_fresh_opt_in(
    live: Live, status: Status, why: str
) -> None:
    email = f"{status.value}@example.com"
    url = preferences_of(live, email, status)
    with live.client() as client:
        page = client.get(url)
        assert why in page.text and "Email me a confirmation link" in page.text
        assert "Subscribe again" not in page.text
        forged = act(client, url, "resubscribe")  # the old form's action, posted by hand
        assert forged.status_code == 400 and COME_BACK_BY_EMAIL in forged.text
        assert live.subscriber(email).status is status
        assert confirmation_links(live, email) == []  # nothing is mailed unasked

        asked = act(client, url, "reconfirm")
        assert asked.status_code == 303 and asked.headers["location"].endswith("saved=reconfirm")
        assert "A confirmation link is on its way" in client.get(asked.headers["location"]).text
        assert live.subscriber(email).status is status  # not until the link is opened
        [link] = confirmation_links(live, email)
        confirm = client.get(link)
        assert "Yes, subscribe me" in confirm.text
        assert client.post(link, data={"csrf": csrf_of(confirm)}).status_code == 303
    back = live.subscriber(email)
    assert back.status is Status.ACTIVE and back.topics == {"backend", "data"}


@pytest.mark.parametrize("status", [Status.BOUNCED, Status.COMPLAINED])
def test_leaving_never_softens_a_bounce_or_a_complaint(live: Live, status: Status) -> None:
    """Unsubscribing would make it "unsubscribed", which "Subscribe again" undoes: the page's
    unsubscribe, the one-click POST and leaving the last topic all leave it as it is."""
    email = f"{status.value}@example.com"
    subscriber = live.add(email, {"backend"}, status)
    token = live.project.signer().sign(Purpose.MANAGE, subscriber)
    with live.client() as client:
        page = client.get(f"/unsubscribe/{token}")
        client.post(f"/unsubscribe/{token}", data={"csrf": csrf_of(page)})
        client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        leave = f"/unsubscribe/{token}/topic/backend"
        client.post(leave, data={"csrf": csrf_of(client.get(leave))})
        assert live.subscriber(email).status is status
        assert act(client, f"/preferences/{token}", "resubscribe").status_code == 400
    assert live.subscriber(email).status is status


def test_a_pending_reader_asks_again_and_an_active_one_gets_nothing_extra(live: Live) -> None:
    pending = preferences_of(live, "pending@example.com", Status.PENDING)
    active = preferences_of(live, "active@example.com", Status.ACTIVE)
    with live.client() as client:
        assert act(client, pending, "resubscribe").status_code == 400
        assert act(client, pending, "reconfirm").status_code == 303
        assert act(client, active, "reconfirm").status_code == 303  # forged: nothing to confirm
    assert len(confirmation_links(live, "pending@example.com")) == 1
    assert confirmation_links(live, "active@example.com") == []
    assert live.subscriber("pending@example.com").status is Status.PENDING


def test_an_erased_reader_comes_back_by_signing_up_and_opening_the_link(live: Live) -> None:
    erased = live.add("gone@example.com", {"data"})
    people.erase(live.project, erased)
    with live.client() as client:
        form = client.get("/subscribe")
        data = {"csrf": csrf_of(form), "email": "gone@example.com", "topics": ["backend"]}
        assert client.post("/subscribe", data=data).status_code == 303
        assert live.subscriber("gone@example.com") is None  # nothing stored until the click
        [link] = confirmation_links(live, "gone@example.com")
        assert "gone" not in link.lower()
        confirm = client.get(link)
        assert "<strong>gone@example.com</strong>" in confirm.text
        assert "Yes, subscribe me" in confirm.text
        done = client.post(link, data={"csrf": csrf_of(confirm)})
        assert done.status_code == 303 and "/preferences/" in done.headers["location"]
        page = client.get(done.headers["location"])
        assert page.status_code == 200 and "gone@example.com" in page.text
    back = live.subscriber("gone@example.com")
    assert back.status is Status.ACTIVE and back.topics == {"backend"} and back.id != erased
