"""Atomic writes: whole or absent, one error naming the file for any OS error (however the writer wraps it), the
mode a plain open would give, and the up-front writability checks of the tools."""

import errno
import json
import os

import pytest
import torch

from tests.helpers import file_size_limit
from vtn.utils.errors import DiskFullError, OutputWriteError, UserError
from vtn.utils.files import atomic_write, check_writable, check_writable_dir, write_json_atomic


def test_a_file_size_limit_is_one_error_naming_the_file_and_the_old_file_stays(tmp_path):
    path = str(tmp_path / "checkpoint.pyth")
    atomic_write(path, lambda f: torch.save({"w": torch.ones(3)}, f))
    big = {"w": torch.zeros(100_000)}  # 400 kB
    with file_size_limit(50_000), pytest.raises(OutputWriteError) as e:
        atomic_write(path, lambda f: torch.save(big, f))  # torch's zip writer says "enforce fail at inline_container"
    assert str(e.value) == f"cannot write {path}: File too large (EFBIG); the file was left as it was"
    assert isinstance(e.value, UserError) and not isinstance(e.value, DiskFullError)
    with file_size_limit(50_000), pytest.raises(OutputWriteError, match="results.json: File too large"):
        write_json_atomic({"scores": list(range(50_000))}, str(tmp_path / "results.json"))
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pyth"]  # no temporary, no half results file


def test_a_full_disk_wrapped_by_the_writer_is_the_disk_full_error(tmp_path):
    def torch_like(f):
        f.write(b"PK\x03\x04")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:  # torch's writer reports it as its own RuntimeError, the OSError as the context
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    path = str(tmp_path / "c.pyth")
    with pytest.raises(DiskFullError, match=r"cannot write .*c\.pyth: the disk is full \(\d+ MiB free in "):
        atomic_write(path, torch_like)
    for code, name in ((errno.EIO, "EIO"), (errno.EROFS, "EROFS"), (errno.EDQUOT, None)):

        def fails(f, code=code):
            raise OSError(code, os.strerror(code))

        with pytest.raises(OutputWriteError) as e:
            atomic_write(path, fails)
        assert f"cannot write {path}: " in str(e.value)
        assert (name in str(e.value)) if name else isinstance(e.value, DiskFullError)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="a bug"):  # not an OS error: the writer's own exception, unchanged
        atomic_write(path, lambda f: (_ for _ in ()).throw(ValueError("a bug")))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json_atomic({"top1": 1.0}, str(tmp_path / "test_results.json"))
        atomic_write(str(tmp_path / "c.pyth"), lambda f: torch.save({"w": torch.ones(1)}, f))
    finally:
        os.umask(old)
    for name in ("test_results.json", "c.pyth"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == mode, name
    assert json.loads((tmp_path / "test_results.json").read_text()) == {"top1": 1.0}


def test_writability_is_checked_before_any_work(tmp_path):
    check_writable(str(tmp_path / "new" / "deeper" / "p.csv"), "--output")  # folders are made
    assert os.listdir(tmp_path / "new" / "deeper") == []  # the probe is gone
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputWriteError) as e:
        check_writable(str(tmp_path / "afile" / "p.csv"), "--output")
    assert (
        str(e.value)
        == f"--output: cannot write {tmp_path / 'afile' / 'p.csv'}: {tmp_path / 'afile'} is a file, not a folder"
    )
    with pytest.raises(OutputWriteError, match=r"--output: .* is a folder"):
        check_writable(str(tmp_path / "new"), "--output")
    with pytest.raises(OutputWriteError, match=r"DATA.FEATURES_DIR: .*afile is a file; give a folder"):
        check_writable_dir(str(tmp_path / "afile"), "DATA.FEATURES_DIR")
    check_writable_dir(str(tmp_path / "features"), "DATA.FEATURES_DIR")
    assert os.path.isdir(tmp_path / "features")
