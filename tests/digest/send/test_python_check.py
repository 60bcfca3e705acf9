"""The digest refuses to run on a Python whose email package does not check the headers it
writes (before the fix of CVE-2024-6923): in one line, naming the releases that have it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from digest.app.wiring import Project
from digest.errors import DigestError
from digest.scheduler import SchedulerService
from digest.send import message
from digest.send.message import (
    MINIMUM_PYTHON,
    email_policy,
    header_verification_problem,
    require_header_verification,
)
from digest.web import create_app

ROOT = Path(__file__).parents[3]
UNPATCHED = Path.home() / ".pyenv" / "versions" / "3.11.7" / "bin" / "python3"
"""A CPython without the fix (3.11.7 came out before 3.11.10), where pyenv put one."""


class OldPolicy:
    """What a policy looked like before the fix: no ``verify_generated_headers``."""


def test_the_running_python_checks_headers_and_the_policy_says_so() -> None:
    require_header_verification()
    assert email_policy().verify_generated_headers is True


def test_a_python_without_the_check_is_named_with_the_releases_that_have_it() -> None:
    problem = header_verification_problem(OldPolicy())
    assert problem is not None and "verify_generated_headers" in problem
    assert MINIMUM_PYTHON in problem and "3.12.5" in problem and "3.11.10" in problem
    assert DigestError(problem, where="python").__str__().count("\n") == 0


@pytest.mark.skipif(not UNPATCHED.exists(), reason="no unpatched CPython 3.11.7 under pyenv")
def test_the_command_line_refuses_to_start_on_an_unpatched_python(tmp_path: Path) -> None:
    """The venv's packages run on any 3.11, so the real console script is started on pyenv's
    3.11.7: one line on stderr, exit code 2, and nothing else done."""
    packages = next((ROOT / ".venv" / "lib").glob("python3.11/site-packages"), None)
    if packages is None:
        pytest.skip("the venv is not a Python 3.11 one")
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{packages}"}
    result = subprocess.run(
        [str(UNPATCHED), "-m", "digest", "init", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: python: this Python (3.11.7) does not check")
    assert not (tmp_path / "site").exists()


def test_the_web_app_and_the_scheduler_refuse_to_start_too(
    example_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message, "header_verification_problem", lambda: "no check here")
    with pytest.raises(DigestError, match=r"^python: no check here$"):
        create_app(example_project, example_project.mailer())
    with pytest.raises(DigestError, match=r"^python: no check here$"):
        SchedulerService(example_project)
