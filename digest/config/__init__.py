"""Load and validate ``digest.toml``.

Every problem is reported as one line naming the file, the exact key and what was expected,
because the person reading it is editing that file, not reading our code. Secrets never live
in the file: they are read from the environment mapping handed to :func:`load_config`.

The package is split by what each part configures: ``content`` (site, theme, topics, sources,
gathering), ``digests`` (schedule and approval), ``sending`` (transports, batches, leases),
``web`` (readers' pages, editors, key rotation), on the shared value types of ``fields``;
``file`` joins the sections into the file's shape, ``environment`` holds what comes from the
environment, ``loader`` reads the file and ``loaded`` is what the rest of the code is handed.
Callers import from ``digest.config`` only: this module is the package's one public face.
"""

from digest.config.bounces import BouncesConfig
from digest.config.content import (
    GatherConfig,
    SharedSourceConfig,
    SiteConfig,
    SourceConfig,
    SourceKind,
    ThemeConfig,
    TopicConfig,
)
from digest.config.digests import ApprovalPolicy, DigestConfig
from digest.config.environment import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    IMAP_PASSWORD_ENV,
    MAKE_SECRET,
    PREVIOUS_KEY_ENV,
    SECRET_KEY_ENV,
    SENDGRID_HOST_ENV,
    SENDGRID_KEY_ENV,
    SMTP_PASSWORD_ENV,
    Secrets,
    resolve_config_path,
    secret_bits,
)
from digest.config.fields import SLUG_PATTERN, EmailAddress, HttpUrl, PublicUrl, Slug
from digest.config.file import FileConfig
from digest.config.loaded import Config
from digest.config.loader import load_config
from digest.config.sending import SendGridConfig, SendingConfig, SmtpConfig
from digest.config.web import EditorConfig, EditorUserConfig, SecurityConfig, WebConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "IMAP_PASSWORD_ENV",
    "MAKE_SECRET",
    "PREVIOUS_KEY_ENV",
    "SECRET_KEY_ENV",
    "SENDGRID_HOST_ENV",
    "SENDGRID_KEY_ENV",
    "SLUG_PATTERN",
    "SMTP_PASSWORD_ENV",
    "ApprovalPolicy",
    "BouncesConfig",
    "Config",
    "DigestConfig",
    "EditorConfig",
    "EditorUserConfig",
    "EmailAddress",
    "FileConfig",
    "GatherConfig",
    "HttpUrl",
    "PublicUrl",
    "Secrets",
    "SecurityConfig",
    "SendGridConfig",
    "SendingConfig",
    "SharedSourceConfig",
    "SiteConfig",
    "Slug",
    "SmtpConfig",
    "SourceConfig",
    "SourceKind",
    "ThemeConfig",
    "TopicConfig",
    "WebConfig",
    "load_config",
    "resolve_config_path",
    "secret_bits",
]
