"""Bringing a list in and taking it out, in the editor app: upload a subscriber file, see what
its import would do (every bad row by line) before anything changes, then confirm it; and
download everyone as CSV. The same use cases as ``digest subscribers import`` and ``export``.

The upload is kept under a random name between the check and the confirmation
(:func:`digest.app.subscribers.keep_upload`): the confirming form names only that, so no path
from a request is ever opened. The body's declared size is checked before it is read.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from digest.app import subscribers
from digest.app.editorial import Editor
from digest.errors import DigestError
from digest.web.editor_app import EDITOR_HEADERS, editor_page, editors_only
from digest.web.responses import checked_form
from digest.web.services import services
from subscribers.importer import ParsedFile

ENCODINGS = {
    "": "UTF-8 or UTF-16, as spreadsheets save them",
    "cp1252": "Windows (cp1252): Excel's \u201cCSV (Comma delimited)\u201d",
    "mac_roman": "Mac OS Roman: older Mac spreadsheets",
    "latin-1": "Latin-1 (ISO 8859-1)",
}
OPTIONS = ("topics", "topics_column", "encoding", "reactivate")
SHOWN_PROBLEMS = 200
"""Bad rows listed on the page; the rest are counted (a whole file of them helps nobody)."""
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def _text(form: FormData, key: str, limit: int = 200) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _options(form: FormData) -> dict[str, str]:
    chosen = {key: _text(form, key) for key in OPTIONS}
    if chosen["encoding"] not in ENCODINGS:
        chosen["encoding"] = ""
    chosen["reactivate"] = "yes" if chosen["reactivate"] else ""
    return chosen


def _file_name(given: str) -> str:
    """The uploaded file's own name, for the page and the subscribers' source: its last part,
    without control characters, short."""
    name = _UNPRINTABLE.sub("", Path(given.replace("\\", "/")).name)
    return name[:100] or "upload.csv"


def _read(request: Request, path: Path, options: dict[str, str]) -> ParsedFile:
    return subscribers.read_file(
        services(request).project,
        path,
        options["topics"],
        options["encoding"] or None,
        options["topics_column"],
    )


def _form_page(
    request: Request,
    editor: Editor,
    status: int = 200,
    alert: str | None = None,
    options: dict[str, str] | None = None,
) -> Response:
    return editor_page(
        request,
        editor,
        "web/editor/import.html.j2",
        status=status,
        alert=alert,
        options=options or dict.fromkeys(OPTIONS, ""),
        encodings=ENCODINGS,
        max_mb=services(request).project.config.file.editor.import_max_mb,
    )


async def import_form(request: Request, editor: Editor) -> Response:
    return _form_page(request, editor)


async def check(request: Request, editor: Editor) -> Response:
    """Keep the upload, read it and import it as a dry run: the page shows what the import
    would do and asks to confirm."""
    max_bytes = services(request).project.config.file.editor.import_max_mb * 2**20
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return _form_page(request, editor, 411, "The upload did not say its size; try again.")
    if int(declared) > max_bytes + 64 * 1024:
        return _form_page(
            request,
            editor,
            413,
            f"The file is larger than {max_bytes // 2**20} MB: import it with "
            "`digest subscribers import`, or raise [editor] import_max_mb.",
        )
    await request.form(max_files=1, max_fields=len(OPTIONS) + 2)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    options = _options(form)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _form_page(request, editor, 400, "Choose a file to import.", options)
    project = services(request).project
    name = _file_name(upload.filename)
    try:
        kept = await run_in_threadpool(
            subscribers.keep_upload, project, upload.file, name, max_bytes
        )
    except subscribers.UploadTooLarge as err:
        return _form_page(request, editor, 413, str(err))
    except DigestError as err:
        return _form_page(request, editor, 507, str(err))
    finally:
        await upload.close()
    path = subscribers.upload_folder(project) / kept
    try:
        parsed = await run_in_threadpool(_read, request, path, options)
        summary = await run_in_threadpool(
            subscribers.import_file, project, parsed, name, True, bool(options["reactivate"])
        )
    except DigestError as err:
        subscribers.drop_upload(project, kept)
        return _form_page(request, editor, 400, _shown(err, request, name), options)
    rows = subscribers.report_rows(summary, len(parsed.problems))
    return _report(request, editor, name, parsed, rows, options, kept)


def _shown(err: DigestError, request: Request, name: str) -> str:
    """The error as the editor sees it: their file by the name they chose, not where it is
    kept."""
    folder = str(subscribers.upload_folder(services(request).project))
    return f"{name}: {err.message}" if (err.where or "").startswith(folder) else str(err)


def _report(
    request: Request,
    editor: Editor,
    name: str,
    parsed: ParsedFile,
    report: list[tuple[str, int]],
    options: dict[str, str],
    kept: str | None,
) -> Response:
    """``kept``: the upload still to confirm (a dry run's page), or None once imported."""
    return editor_page(
        request,
        editor,
        "web/editor/import.html.j2",
        report=report,
        problems=parsed.problems[:SHOWN_PROBLEMS],
        more_problems=max(0, len(parsed.problems) - SHOWN_PROBLEMS),
        good_rows=len(parsed.rows),
        file_name=name,
        kept=kept,
        options=options,
        encodings=ENCODINGS,
        done=None if kept else f"Imported {name}.",
    )


async def confirm(request: Request, editor: Editor) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    options = _options(form)
    kept, name = _text(form, "kept"), _file_name(_text(form, "file_name"))
    project = services(request).project
    try:
        with subscribers.claimed_upload(project, kept) as path:
            parsed = await run_in_threadpool(_read, request, path, options)
            summary = await run_in_threadpool(
                subscribers.import_file, project, parsed, name, False, bool(options["reactivate"])
            )
    except DigestError as err:
        return _form_page(request, editor, 409, _shown(err, request, name), options)
    rows = subscribers.report_rows(summary, len(parsed.problems))
    return _report(request, editor, name, parsed, rows, options, None)


async def cancel(request: Request, editor: Editor) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    subscribers.drop_upload(services(request).project, _text(form, "kept"))
    return _form_page(request, editor)


async def export(request: Request, editor: Editor) -> Response:
    """Everyone as CSV (the file ``digest subscribers export`` writes), written to a
    temporary file and removed once sent."""
    folder = Path(tempfile.mkdtemp(prefix="digest-export-"))
    path = folder / "subscribers.csv"
    try:
        await run_in_threadpool(subscribers.export, services(request).project, path)
    except DigestError as err:
        shutil.rmtree(folder, ignore_errors=True)
        return _form_page(request, editor, 507, str(err))

    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename="subscribers.csv",
        headers=EDITOR_HEADERS,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


UPLOAD_PATH = "/editor/subscribers/import"
ROUTES = [
    Route(UPLOAD_PATH, editors_only(import_form), methods=["GET"]),
    Route(UPLOAD_PATH, editors_only(check), methods=["POST"]),
    Route("/editor/subscribers/import/confirm", editors_only(confirm), methods=["POST"]),
    Route("/editor/subscribers/import/cancel", editors_only(cancel), methods=["POST"]),
    Route("/editor/subscribers/export.csv", editors_only(export), methods=["GET"]),
]
