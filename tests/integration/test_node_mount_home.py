"""The node image's mount-home.sh on a real block device (a loop device): a blank disk is
formatted and mounted, its files survive a remount (the next start), and a disk that already
holds a filesystem is mounted as it is, never formatted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "jupyter_config" / "node-image" / "mount-home.sh"


def run(*argv, check=True):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=check)


@pytest.fixture
def loop_device(tmp_path):
    if os.geteuid() != 0 or not shutil.which("losetup"):
        pytest.skip("needs root and losetup (the CI machine has both)")
    image = tmp_path / "home-volume.img"
    with open(image, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    try:
        device = run("losetup", "-f", "--show", image).stdout.strip()
    except subprocess.CalledProcessError as e:
        pytest.skip(f"no loop device here: {e.stderr.strip()}")
    yield device
    run("umount", "-l", tmp_path / "home", check=False)
    run("losetup", "-d", device, check=False)


def test_blank_is_formatted_once_and_work_survives_a_remount(loop_device, tmp_path):
    home = tmp_path / "home"
    first = run("bash", SCRIPT, loop_device, home)
    assert "is blank: creating an ext4 filesystem" in first.stderr
    assert run("findmnt", "-no", "SOURCE", home).stdout.strip() == loop_device
    (home / "thesis.ipynb").write_text("chapter 1")
    run("umount", home)  # the server stops; the volume is detached and kept

    again = run("bash", SCRIPT, loop_device, home)  # the next start
    assert "creating" not in again.stderr
    assert (home / "thesis.ipynb").read_text() == "chapter 1"
    assert run("blkid", "-s", "LABEL", "-o", "value", loop_device).stdout.strip() == "hybrid-home"


def test_a_disk_that_already_holds_a_filesystem_is_never_formatted(loop_device, tmp_path):
    """A volume prepared elsewhere (restored from a snapshot, an older image's ext2): mounted as is."""
    run("mkfs.ext2", "-q", "-L", "restored", loop_device)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run("mount", loop_device, elsewhere)
    (elsewhere / "data.csv").write_text("1,2,3")
    run("umount", elsewhere)

    result = run("bash", SCRIPT, loop_device, tmp_path / "home")
    assert "creating" not in result.stderr
    assert (tmp_path / "home" / "data.csv").read_text() == "1,2,3"
    assert run("blkid", "-s", "LABEL", "-o", "value", loop_device).stdout.strip() == "restored"


def test_the_accounts_directory_is_made_on_the_volume_and_given_to_it(loop_device, tmp_path):
    import pwd

    account = pwd.getpwuid(65534).pw_name  # nobody: an account that exists on any Debian
    home = tmp_path / "home"
    run("bash", SCRIPT, loop_device, home, account)
    made = home / account
    assert made.is_dir() and made.stat().st_uid == 65534 and oct(made.stat().st_mode & 0o777) == "0o700"
    (made / "kept").write_text("x")  # a later mount leaves it as it is
    run("umount", home)
    run("bash", SCRIPT, loop_device, home, account)
    assert (made / "kept").read_text() == "x"
