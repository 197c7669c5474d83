"""scripts/setup_env.sh: a failed install says why in one line and leaves no broken .venv behind."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A stand-in for `python3 -m venv .venv` whose venv python fails every pip install.
FAKE_PYTHON3 = """#!/bin/sh
mkdir -p .venv/bin
printf '#!/bin/sh\\necho "ERROR: [Errno 28] No space left on device" >&2\\nexit 1\\n' > .venv/bin/python
chmod +x .venv/bin/python
"""


def _fake_df(free_kb: int | None) -> str:
    if free_kb is None:
        return "#!/bin/sh\necho 'df: cannot read table of mounted file systems' >&2\nexit 1\n"
    return (
        "#!/bin/sh\n"
        'echo "Filesystem 1024-blocks Used Available Capacity Mounted on"\n'
        f'echo "/dev/vda 264241152 100000000 {free_kb} 96% /"\n'
    )


def _write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_setup(tmp_path: Path, free_kb: int | None, had_venv: bool = False) -> subprocess.CompletedProcess:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup_env.sh", project / "scripts" / "setup_env.sh")
    if had_venv:  # an incomplete venv from before: the script must not delete what it did not make
        (project / ".venv" / "lib").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_exe(bin_dir / "python3", FAKE_PYTHON3)
    _write_exe(bin_dir / "df", _fake_df(free_kb))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "scripts/setup_env.sh"], cwd=project, env=env, capture_output=True, text=True
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("free_gb", "expected"),
    [
        # The disk is the reason: name the free and the needed space.
        (3, "error: pip could not install the environment: 3 GB free on the disk of "),
        # Enough space, or df cannot tell: point at pip's own message instead of guessing.
        (60, "error: pip could not install the environment (see its message above)"),
        (None, "error: pip could not install the environment (see its message above)"),
    ],
)
def test_failed_install_says_why_and_removes_the_venv_it_made(tmp_path, free_gb, expected):
    result = _run_setup(tmp_path, free_kb=None if free_gb is None else free_gb * 1024 * 1024)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(expected)
    if free_gb == 3:
        assert last.endswith(
            "about 8 GB needed (the venv and pip's temporary files); free some space and run again"
        )
    assert ("GB free" in last) == (free_gb == 3)
    assert not (tmp_path / "project" / ".venv").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_failed_install_keeps_a_venv_that_was_there_before(tmp_path):
    result = _run_setup(tmp_path, free_kb=60 * 1024 * 1024, had_venv=True)
    assert result.returncode == 1
    assert (tmp_path / "project" / ".venv" / "lib").is_dir()
