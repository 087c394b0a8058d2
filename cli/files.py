"""
Writing files so that nothing the user has is ever left half-written: every file goes to a
temporary name beside its destination and is renamed onto it (atomic on one filesystem), with the
permissions any file the user writes gets. No torch here: report.py writes its page with it too.
"""

import os
import tempfile


def permissions(mode):
    """mode with the user's umask applied (tempfile makes 0600 files and 0700 folders)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def unwritable(path):
    """None when `path` (a folder, made if missing) can be written; else why not, naming the existing
    path that stops it ("... is not writable", or "... is a file" where a folder would have to be)."""
    parent = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{parent} is a file, not a folder"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{parent} is not writable"


def output_problem(flag, path, overwrite=True):
    """Why the file `path`, given with `flag`, cannot be written (one line naming both), or None;
    checked before any work, so that a long run never ends in a traceback at its last step.
    overwrite=False: a file already there is a result the user has, kept unless they say so."""
    if os.path.isdir(path):
        return f"{flag} {path} is a folder: pass a file name"
    if not overwrite and os.path.exists(path):
        return f"{flag} {path} already exists: pass another file, or --overwrite to replace it"
    stop = unwritable(path)
    return stop and f"{flag} {path}: {stop}; pass a file in a folder you can write to"


def check_outputs(p, outputs, overwrite=True):
    """Stop an argparse parser `p` on the first (flag, path) of outputs that cannot be written (None
    paths, flags not given, are skipped)."""
    for flag, path in outputs:
        problem = path and output_problem(flag, path, overwrite)
        if problem:
            p.error(problem)


def atomic_write(path, write):
    """Call write(tmp_path) for a temporary file beside `path` (its folder made if missing), then
    rename it onto `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, permissions(0o666))   # mkstemp makes 0600; the result is read like any file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, write)
