"""Topic-segmented newsletter digests from blog feeds.

The stages as a Python API (the CLI only wraps these)::

    from digest import Project, load_config
    project = Project.open(load_config("digest.toml"))
    project.gather()
    project.plan("weekly")
    project.preview("weekly", Path("preview"))
    project.send("weekly")
"""

from digest.config import Config, load_config
from digest.errors import DigestError
from digest.pipeline import Project

__all__ = ["Config", "DigestError", "Project", "load_config"]
