"""Hostile torch files bounded in memory: a small file that declares gigabytes is refused
from its zip directory, before torch inflates anything.

The bomb is a real torch file holding a 1 GiB tensor whose records are then deflated (zeros
compress a thousandfold: about 1 MB on disk). Loading runs in a child process whose address
space is capped at what it has after its imports plus 512 MiB: inflating the tensor cannot
fit, so a refusal that comes from the size check (and not from running out of memory) is
what the test asks for.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.runs import Run, RunError

BOMB_BYTES = 1 << 30


def deflate_records(src: Path, dest: Path) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            with zin.open(info) as fin, zout.open(info.filename, "w", force_zip64=True) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)


def bomb(tmp_path: Path, payload_of) -> Path:
    """A deflated torch file whose first tensor holds BOMB_BYTES of zeros."""
    plain = tmp_path / "plain.pth"
    big = torch.empty(BOMB_BYTES // 4)  # fresh pages: zeros, never touched here
    torch.save(payload_of(big), plain)
    del big
    out = tmp_path / "bomb.pth"
    deflate_records(plain, out)
    plain.unlink()
    assert out.stat().st_size < 8 << 20
    return out


CHILD = textwrap.dedent(
    """
    import resource, sys
    from grok_tui.engine.store.arena import import_arena
    from grok_tui.engine.store.runs import Run, RunError
    import torch

    def vm_size():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    limit = vm_size() + (512 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        if sys.argv[1] == "import":
            import_arena(sys.argv[2], sys.argv[3])
        else:
            Run(sys.argv[2]).load_resume()
        print("LOADED")
    except RunError as exc:
        print("REFUSED", exc)
    """
)


def load_in_child(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.slow
def test_an_arena_file_that_inflates_to_a_gigabyte_is_refused_unread(tmp_path) -> None:
    path = bomb(tmp_path, lambda big: {"state_dicts": [{"embed.W_E": big}], "epochs": [0],
                                        "train_losses": [1.0], "test_losses": [1.0]})  # fmt: skip
    out = load_in_child("import", str(path), str(tmp_path / "run"))
    assert out.startswith("REFUSED bomb.pth: ") and "declares 1,073,741,824 bytes" in out, out
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_resume_state_that_inflates_to_a_gigabyte_is_refused_unread(tmp_path) -> None:
    run = Run.create(tmp_path / "run", RunConfig(p=7, frac_train=0.5, preset="t"), "cpu")
    path = bomb(tmp_path, lambda big: {"epoch": 0, "weights": {"embed.W_E": big}})
    path.replace(run.resume_path)
    out = load_in_child("resume", str(run.path))
    assert out.startswith("REFUSED resume.pt: ") and "declares 1,073,741,824 bytes" in out, out


def test_genuine_files_pass_the_size_check(tmp_path) -> None:
    """A deflated file of modest size still loads: the check is about declared sizes."""
    from grok_tui.engine.store.arena import load_arena_file
    from tests.test_hostile_files import good_file

    torch.save(good_file(), tmp_path / "plain.pth")
    deflate_records(tmp_path / "plain.pth", tmp_path / "deflated.pth")
    assert len(load_arena_file(tmp_path / "deflated.pth").epochs) == 2


def test_many_small_records_that_add_up_are_refused(tmp_path) -> None:
    """Under the per-record cap, but 200 MB declared by a file of a few hundred kB."""
    from grok_tui.engine.store.arena import load_arena_file

    sds = [{"embed.W_E": torch.zeros(1 << 18)} for _ in range(200)]
    torch.save({"state_dicts": sds, "epochs": list(range(200))}, tmp_path / "plain.pth")
    deflate_records(tmp_path / "plain.pth", tmp_path / "many.pth")
    with pytest.raises(RunError, match=r"declare 209,7\d\d,\d\d\d bytes in a file of"):
        load_arena_file(tmp_path / "many.pth")


def with_record_replaced(src: Path, dest: Path, name: str, data: bytes) -> None:
    """A copy of a torch zip whose record `name` is the deflated `data`, while its local
    header and central directory still declare the genuine record's size and CRC."""
    with zipfile.ZipFile(src) as zin:
        genuine = zin.getinfo(name)
        with zipfile.ZipFile(dest, "w") as zout:
            for info in zin.infolist():
                if info.filename == name:
                    zout.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
                else:
                    zout.writestr(info, zin.read(info))
    raw = bytearray(dest.read_bytes())
    with zipfile.ZipFile(dest) as z:
        local = z.getinfo(name).header_offset
    central = raw.rindex(name.encode()) - 46  # its directory entry (the name's last copy)
    assert raw[central : central + 4] == b"PK\x01\x02"
    for at in (local + 14, central + 16):  # CRC, compressed size, size
        raw[at : at + 4] = struct.pack("<I", genuine.CRC)
        raw[at + 8 : at + 12] = struct.pack("<I", genuine.file_size)
    dest.write_bytes(bytes(raw))


@pytest.mark.parametrize("inflates_to", [64 << 20, 0], ids=["64MB-of-zeros", "nothing"])
def test_a_record_whose_data_is_not_what_its_header_declares_is_refused(
    tmp_path, inflates_to
) -> None:
    """The header declares the genuine size and CRC; the data inflates to something else
    (far more, or nothing). torch does not check CRCs: before, the import succeeded with
    that tensor read as zeros."""
    from grok_tui.engine.store.arena import import_arena
    from tests.test_hostile_files import good_file

    torch.save(good_file(), tmp_path / "plain.pth")
    with zipfile.ZipFile(tmp_path / "plain.pth") as z:
        tensors = [i for i in z.infolist() if "/data/" in i.filename]
        biggest = max(tensors, key=lambda i: i.file_size).filename
    path = tmp_path / "full_run_data.pth"
    with_record_replaced(tmp_path / "plain.pth", path, biggest, bytes(inflates_to))
    with zipfile.ZipFile(path) as z:  # the forgery declares what the genuine file did
        assert (
            z.getinfo(biggest).file_size
            == zipfile.ZipFile(tmp_path / "plain.pth").getinfo(biggest).file_size
        )
    with pytest.raises(RunError) as exc:
        import_arena(path, tmp_path / "run")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("full_run_data.pth: its record "), message
    assert biggest in message and "damaged" in message, message
    assert not (tmp_path / "run").exists()
