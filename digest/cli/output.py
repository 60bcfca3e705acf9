"""Where the CLI writes: results to stdout, progress, warnings and errors to stderr."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from digest.errors import DigestError

out = Console()
err = Console(stderr=True)


def print_error(error: DigestError) -> None:
    """One line, no traceback: what went wrong and where (a file, an option, an address)."""
    err.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
