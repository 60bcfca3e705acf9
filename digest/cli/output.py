"""Where the CLI writes: results to stdout, progress, warnings and errors to stderr."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.markup import escape

from digest.errors import DigestError

out = Console()
err = Console(stderr=True)


def print_error(error: DigestError) -> None:
    """One line, no traceback: what went wrong and where (a file, an option, an address)."""
    err.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)


def print_whole(renderable: RenderableType) -> None:
    """Print a table whose no_wrap cells (addresses) must never be cut: at the terminal's width
    when they fit, else one row a line past its edge (the terminal wraps the line; an address
    stays one piece to read and copy)."""
    needed = out.measure(renderable, options=out.options.update_width(100_000))
    if needed.minimum <= out.width:
        out.print(renderable)
    else:
        Console(width=needed.maximum).print(renderable)
