"""Topic-segmented newsletter digests from blog feeds.

The use cases as a Python API (the CLI, the web app and the scheduler call only these)::

    from digest import Project, load_config
    from digest.app import gathering, issues, previews, sending

    project = Project.open(load_config("digest.toml"))
    gathering.gather_sources(project)
    issues.plan(project, "weekly")
    previews.preview(project, "weekly", Path("preview"))
    sending.send(project, "weekly")
"""

from digest.app.wiring import Project
from digest.config import Config, load_config
from digest.errors import DigestError

__all__ = ["Config", "DigestError", "Project", "load_config"]
