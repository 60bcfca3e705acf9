"""Editor sessions over real HTTP: logging out revokes the session on the server, and strangers
failing on an account cannot lock its editor out of the browser they use."""

from __future__ import annotations

import httpx

from tests.digest.web.conftest import EditorSite, csrf_of
from tests.digest.web.test_editor_routes import from_address


def session_cookie(client: httpx.Client) -> str:
    value = client.cookies.get("digest_editor", path="/editor")
    assert value
    return value


def log_out(client: httpx.Client) -> None:
    page = client.get("/editor/")
    assert client.post("/editor/logout", data={"csrf": csrf_of(page)}).status_code == 303


def test_a_copied_session_cookie_stops_working_at_logout(site: EditorSite) -> None:
    with site.live.client() as editor, site.live.client() as thief:
        assert site.login(editor).status_code == 303
        thief.cookies.set("digest_editor", session_cookie(editor), path="/editor")
        assert thief.get("/editor/").status_code == 200  # a copy works while the session lives
        log_out(editor)
        assert editor.get("/editor/").status_code == 303
        stolen = thief.get("/editor/")
        assert stolen.status_code == 303 and stolen.headers["location"].startswith("/editor/login")


def test_logging_out_ends_that_session_only(site: EditorSite) -> None:
    with site.live.client() as laptop, site.live.client() as phone:
        site.login(laptop)
        site.login(phone)
        log_out(laptop)
        assert laptop.get("/editor/").status_code == 303
        assert phone.get("/editor/").status_code == 200


def test_strangers_failing_from_many_addresses_do_not_lock_out_the_editors_browser(
    site: EditorSite,
) -> None:
    """Twelve addresses fail on the editor's account: the account is closed to browsers the
    editor never logged in from, the editor's own browser (its device cookie) still gets in."""
    with from_address(site.live.base, "127.0.0.2") as browser:
        assert site.login(browser).status_code == 303
        log_out(browser)
        assert browser.cookies.get("digest_device", path="/editor/login")
        for i in range(12):
            with from_address(site.live.base, f"127.0.1.{i + 1}") as stranger:
                assert site.login(stranger, password=f"guess {i}").status_code in (400, 429)
        with from_address(site.live.base, "127.0.0.3") as new_browser:
            refused = site.login(new_browser)  # the right password, but an unknown browser
            assert refused.status_code == 429 and "Too many failed attempts" in refused.text
        back = site.login(browser)
        assert back.status_code == 303 and back.headers["location"] == "/editor/"
        assert browser.get("/editor/").status_code == 200


def test_a_device_cookie_is_the_accounts_own_and_has_limits_of_its_own(
    site: EditorSite,
) -> None:
    with from_address(site.live.base, "127.0.0.2") as browser:
        assert site.login(browser).status_code == 303
        device = browser.cookies.get("digest_device", path="/editor/login")
        assert device
        log_out(browser)
        for _ in range(10):  # the editor's own browser, mistyping: counted for it alone
            assert site.login(browser, password="typo").status_code == 400
        assert site.login(browser).status_code == 429
    someone = EditorSite(site.live, email="someone@northwind.example")
    for i in range(10):  # strangers close both accounts to unknown browsers
        with from_address(site.live.base, f"127.0.1.{i + 1}") as stranger:
            assert site.login(stranger, password="guess").status_code == 400
            assert someone.login(stranger, password="guess").status_code == 400
    with from_address(site.live.base, "127.0.0.4") as other:
        other.cookies.set("digest_device", device, path="/editor/login")
        assert someone.login(other, password="guess").status_code == 429  # not its account
    with from_address(site.live.base, "127.0.0.5") as forger:
        payload, _, signature = device.rpartition(".")
        forger.cookies.set("digest_device", payload + "." + signature[::-1], path="/editor/login")
        assert site.login(forger).status_code == 429  # a tampered cookie is no device
