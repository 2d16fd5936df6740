"""`dnax.atomic`: whole files or none, with the permissions a plain write would give."""
import os
import stat

import pytest

from dnax.atomic import atomic_write_bytes, atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a" / "results.md", "| x |\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a" / "results.md").stat().st_mode) == mode  # mkstemp alone gives 0600
    assert (tmp_path / "a" / "results.md").read_text() == "| x |\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]
