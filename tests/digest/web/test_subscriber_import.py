"""Importing a subscriber file and downloading the list in the editor app, over real HTTP
(uvicorn on loopback): editors only, CSRF on every change, nothing changed until the editor
confirms what the check showed, every bad row by line, and no path from a request opened."""

from __future__ import annotations

import csv
import io
import re
import socket
from datetime import timedelta
from pathlib import Path

import httpx

from digest.app import subscribers
from subscribers.models import Status
from tests.digest.web.conftest import EditorSite, csrf_of, logged_in

SPREADSHEETS = Path(__file__).parents[2] / "data" / "spreadsheets"
GROUPS = "What would you like to read about?"


def check(
    client: httpx.Client, file: Path, content: bytes | None = None, **options: str
) -> httpx.Response:
    form = client.get("/editor/subscribers/import")
    assert form.status_code == 200
    upload = content if content is not None else file.read_bytes()
    return client.post(
        "/editor/subscribers/import",
        data={"csrf": csrf_of(form), **options},
        files={"file": (file.name, upload, "text/csv")},
    )


def hidden(page: httpx.Response) -> dict[str, str]:
    """The confirming form's fields, as the browser would post them."""
    confirm = page.text[page.text.index('action="/editor/subscribers/import/confirm"') :]
    confirm = confirm[: confirm.index("</form>")]
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', confirm))


def kept_files(site: EditorSite) -> list[str]:
    folder = subscribers.upload_folder(site.live.project)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_pages_need_a_session_and_every_change_its_csrf_field(site: EditorSite) -> None:
    with site.live.client() as anonymous:
        for path in ("/editor/subscribers/import", "/editor/subscribers/export.csv"):
            answer = anonymous.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/editor/login?next=")
        answer = anonymous.post(
            "/editor/subscribers/import", files={"file": ("a.csv", b"email,topics\n")}
        )
        assert answer.status_code == 303
    with logged_in(site) as client:
        answer = client.post(
            "/editor/subscribers/import",
            files={"file": ("a.csv", b"email,topics\nx@example.com,data\n")},
        )
        assert answer.status_code == 403
        for action in ("confirm", "cancel"):
            assert client.post(f"/editor/subscribers/import/{action}").status_code == 403
    assert kept_files(site) == []
    assert site.live.subscriber("x@example.com") is None


def test_a_file_is_checked_shown_and_imported_only_once_confirmed(site: EditorSite) -> None:
    file = SPREADSHEETS / "mailchimp_members_with_groups.csv"
    with logged_in(site) as client:
        page = check(client, file, topics="security", topics_column=GROUPS)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        text = " ".join(page.text.split())
        assert f"What importing {file.name} would do" in text
        assert '<td>added</td><td class="n">3</td>' in text
        assert '<span class="line">Line 5</span>unknown topic(s): &#39;Gardening&#39;' in text
        assert "Import 3 rows" in text
        assert site.live.subscriber("ines@example.pt") is None  # nothing changed yet
        assert len(kept_files(site)) == 1

        fields = hidden(page)
        assert fields["topics_column"] == GROUPS and fields["file_name"] == file.name
        done = client.post("/editor/subscribers/import/confirm", data=fields)
        assert done.status_code == 200
        assert f"Imported {file.name}." in done.text and "not imported" in done.text
        ines = site.live.subscriber("ines@example.pt")
        assert ines is not None and ines.topics == {"backend", "data"}
        assert ines.time_zone == "Europe/Lisbon"
        assert site.live.subscriber("sam@example.com").topics == {"security"}
        assert kept_files(site) == []

        again = client.post("/editor/subscribers/import/confirm", data=fields)
        assert again.status_code == 409 and "upload the file again" in again.text


def test_what_cannot_be_read_is_said_by_the_files_own_name_and_nothing_is_kept(
    site: EditorSite,
) -> None:
    windows = SPREADSHEETS / "excel_windows_code_page.csv"
    with logged_in(site) as client:
        refused = check(client, windows)
        assert refused.status_code == 400
        assert "excel_windows_code_page.csv: not UTF-8 text (line 2" in refused.text
        assert "import it as cp1252" in refused.text
        assert str(subscribers.upload_folder(site.live.project)) not in refused.text
        assert kept_files(site) == []

        read = check(client, windows, encoding="cp1252")
        assert read.status_code == 200 and "Import 2 rows" in read.text
        cancelled = client.post(
            "/editor/subscribers/import/cancel",
            data={"csrf": hidden(read)["csrf"], "kept": hidden(read)["kept"]},
        )
        assert cancelled.status_code == 200 and kept_files(site) == []
        assert site.live.subscriber("juergen@example.de") is None

        unknown = check(client, windows, topics="gardening")
        assert unknown.status_code == 400 and "unknown topic(s) gardening" in unknown.text
        empty = client.post(
            "/editor/subscribers/import",
            data={"csrf": csrf_of(client.get("/editor/subscribers/import"))},
        )
        assert empty.status_code == 400 and "Choose a file to import." in empty.text
        assert kept_files(site) == []


def test_hostile_names_and_kept_names_open_no_other_file(site: EditorSite, tmp_path: Path) -> None:
    """The uploaded file's name is the editor's browser's to choose: its last part only,
    shown as text, stored as a source without control characters; the confirming form's name
    of the kept file is matched whole against the names uploads get, so no path reaches the
    disk."""
    secret = tmp_path / "secret.csv"
    secret.write_text("email,topics\nstolen@example.com,data\n", encoding="utf-8")
    hostile = "..\\..\\<img src=x onerror=alert(1)>\x1b[2J\tX.csv"
    body = (
        b"--B\r\n"
        b'Content-Disposition: form-data; name="csrf"\r\n\r\n%s\r\n'
        b"--B\r\n"
        b'Content-Disposition: form-data; name="file"; filename="%s"\r\n'
        b"Content-Type: text/csv\r\n\r\n"
        b"email,name,topics\nh@example.com,H,data\n\r\n"
        b"--B--\r\n"
    )
    with logged_in(site) as client:
        csrf = csrf_of(client.get("/editor/subscribers/import")).encode()
        page = client.post(
            "/editor/subscribers/import",
            content=body % (csrf, hostile.encode()),
            headers={"content-type": "multipart/form-data; boundary=B"},
        )
        assert page.status_code == 200
        assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
        fields = hidden(page)
        assert fields["file_name"] == "&lt;img src=x onerror=alert(1)&gt;[2JX.csv"
        for forged in (
            str(secret),
            "../" * 8 + str(secret),
            fields["kept"].replace(".csv", "/../../secret.csv"),
            fields["kept"] + "\x00",
        ):
            answer = client.post(
                "/editor/subscribers/import/confirm", data={**fields, "kept": forged}
            )
            assert answer.status_code == 409, forged
        assert site.live.subscriber("stolen@example.com") is None
        confirmed = client.post(
            "/editor/subscribers/import/confirm",
            data={**fields, "file_name": "<img src=x onerror=alert(1)>\x1b[2J\x7fX.csv"},
        )
        assert confirmed.status_code == 200
    with site.live.project.engine.connect() as conn:
        source = conn.exec_driver_sql(
            "SELECT source FROM subscribers WHERE email = 'h@example.com'"
        ).scalar_one()
    assert source == "import:<img src=x onerror=alert(1)>[2JX.csv"


def test_an_upload_waits_an_hour_then_is_gone(site: EditorSite) -> None:
    with logged_in(site) as client:
        page = check(client, SPREADSHEETS / "excel_semicolons.csv")
        fields = hidden(page)
        site.live.clock.now += timedelta(hours=1, seconds=1)
        late = client.post("/editor/subscribers/import/confirm", data=fields)
        assert late.status_code == 409 and "no longer kept" in late.text
        check(client, SPREADSHEETS / "excel_semicolons.csv")  # the next upload sweeps
        assert fields["kept"] not in kept_files(site) and len(kept_files(site)) == 1


def test_the_list_downloads_as_the_csv_an_import_takes_back(site: EditorSite) -> None:
    site.live.add("left@example.com", {"data"}, Status.UNSUBSCRIBED)
    with logged_in(site) as client:
        answer = client.get("/editor/subscribers/export.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == 'attachment; filename="subscribers.csv"'
    assert answer.headers["cache-control"] == "no-store"
    assert answer.content.startswith(b"\xef\xbb\xbfemail,")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert {r["email"]: r["status"] for r in rows}["left@example.com"] == "unsubscribed"
    assert len(rows) == 6


def test_an_upload_over_the_limit_is_refused_from_its_declared_size_before_it_is_read(
    site: EditorSite,
) -> None:
    """What the request says it carries is judged first: a body of 50 MB is never read, nor
    one that does not say its size. Raw HTTP, since a client keeps its headers honest."""
    with logged_in(site) as client:
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    host, port = site.live.base.removeprefix("http://").split(":")

    def answer(length_header: bytes) -> bytes:
        request = (
            b"POST /editor/subscribers/import HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\n%s\r\n"
        ) % (host.encode(), cookies.encode(), length_header)
        with socket.create_connection((host, int(port)), timeout=60) as raw:
            raw.sendall(request)
            received = b""
            while b"\r\n\r\n" not in received:
                received += raw.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            declared = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            assert declared is not None
            length = int(declared[1])
            while len(body) < length:
                body += raw.recv(65536)
            return head + b"\r\n\r\n" + body

    too_big = answer(b"Content-Length: %d\r\n" % (50 * 2**20 + 64 * 1024 + 1))
    assert too_big.startswith(b"HTTP/1.1 413 ")
    assert b"The file is larger than 50 MB" in too_big
    unsized = answer(b"Transfer-Encoding: chunked\r\n")
    assert unsized.startswith(b"HTTP/1.1 411 ")
    assert kept_files(site) == []
