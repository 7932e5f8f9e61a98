"""Reading files written by torch.save safely (`weights_only=True`), with one error that says what is wrong."""

import os
from typing import Optional

import torch

# how a file written by torch.save begins: a zip archive (torch >= 1.6), or a pickle (the legacy format)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def not_a_torch_file(path: str) -> Optional[str]:
    """Why `path` is not a torch.save file at all, judged from its first bytes; None when it may be one."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(_TORCH_MAGIC):
        return None
    try:
        text = head.decode("utf-8").strip()
    except UnicodeDecodeError:
        return f"it starts with bytes {head[:8]!r}, neither a zip archive nor a pickle as torch.save writes"
    first = text.splitlines()[0][:40] if text else ""
    return f"it is a text file (it starts with {first!r}), not a file written by torch.save"


def refusal_reason(e: Exception) -> Optional[str]:
    """The reason torch's weights_only unpickler gave for refusing a file (e.g. the global it would have loaded),
    without its advice to load the file unsafely; None when `e` is not such a refusal."""
    text = str(e)
    if "weights only load failed" not in text.lower():
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines[1:] if "weights_only" not in line and "documentation" not in line.lower()]
    return (reasons[0] if reasons else "an object that is not a tensor or plain data")[:200]


def load_torch_file(path: str, what: str, error: type, mmap: bool = False):
    """`torch.load(path, weights_only=True)` on the CPU. A file that is not a torch file, one that holds objects
    other than tensors and plain data (refused before anything in it runs), and a truncated or corrupted one each
    raise `error` with one message naming `what` and `path`."""
    if os.path.getsize(path) == 0:
        raise error(f"{what} {path} is empty (0 bytes)")
    why = not_a_torch_file(path)
    if why:
        raise error(f"{what} {path} cannot be read: {why}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # truncated zip, wrong format, unpickling of code objects refused
        refused = refusal_reason(e)
        if refused:
            raise error(
                f"{what} {path} holds objects that are not allowed in it ({refused}); vtn loads only tensors and "
                "plain data, so the file was refused and nothing in it was run"
            ) from None
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise error(
            f"{what} {path} cannot be read ({e.__class__.__name__}: {first}); it may be truncated or corrupted"
        ) from e
