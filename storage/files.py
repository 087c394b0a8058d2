"""
Writing files so that nothing the user has is ever left half-written: every file goes to a
temporary name beside its destination and is renamed onto it (atomic on one filesystem), with the
permissions any file the user writes gets. Checkpoints are written here too (save_checkpoint): the
library (load_weights.checkpoint_state) says what they hold, this module how it reaches the disk.
Importing it imports no torch: tools/report.py writes its page with it too.
"""

import atexit
import glob
import json
import math
import os
import shutil
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


def write_json(path, obj):
    """obj as strict JSON, atomically; NaN and inf become null (a metric that is undefined says so
    instead of lying)."""
    atomic_write_text(path, json.dumps(finite(obj), indent=2, allow_nan=False))


def finite(x):
    """NaN and inf become null (strict JSON); a metric that is undefined says so instead of lying."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def atomic_folder(folder, fill):
    """Call fill(tmp) for a temporary folder beside `folder`, then swap it in: a kill leaves the old
    folder or the new one, never a mix (save_checkpoint)."""
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    recover(folder)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(folder)}-")
    old = None
    try:
        fill(tmp)
        os.chmod(tmp, permissions(0o777))
        if os.path.exists(folder):
            old = tempfile.mkdtemp(dir=parent, prefix=f".old-{os.path.basename(folder)}-")
            os.replace(folder, os.path.join(old, "previous"))
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old and not os.path.exists(folder):                      # put the previous one back
            os.replace(os.path.join(old, "previous"), folder)
        raise
    finally:
        if old:
            shutil.rmtree(old, ignore_errors=True)


def save_model(model, path):
    """Save weights (model.safetensors) and config (config.json), atomically: a crash leaves either
    the old files or the new ones, never half-written ones."""
    from safetensors.torch import save_file       # (torch and the library imported where a checkpoint is
    from load_weights import checkpoint_state      # written: tools/report.py imports this module without them)
    tensors, config = checkpoint_state(model)
    os.makedirs(path, exist_ok=True)
    atomic_write(os.path.join(path, "model.safetensors"), lambda tmp: save_file(tensors, tmp))
    atomic_write_text(os.path.join(path, "config.json"), config)


def save_checkpoint(model, tokenizer_dir, folder, results=None):
    """model.safetensors, config.json, every tokenizer file it was trained with (and the results of its
    evaluation), written as a whole folder and swapped in (atomic_folder): a kill leaves the old
    checkpoint or the new one, never new weights beside an old config or a stale tokenizer."""
    from data import TOKENIZER_FILES
    def fill(tmp):
        save_model(model, tmp)
        for f in TOKENIZER_FILES + ("tokenizer_config.json",):
            if os.path.isfile(os.path.join(tokenizer_dir, f)):
                shutil.copyfile(os.path.join(tokenizer_dir, f), os.path.join(tmp, f))
        if results is not None:
            write_json(os.path.join(tmp, "results.json"), results)
    atomic_folder(folder, fill)


def recover(folder):
    """What a kill during an earlier atomic_folder left: put the previous folder back if the swap
    was cut between its two renames, then remove the temporary folders (a checkpoint's are 100 MB)."""
    parent, base = os.path.split(os.path.abspath(folder))
    leftovers = sorted(glob.glob(os.path.join(parent, f".old-{base}-*")) + glob.glob(os.path.join(parent, f".tmp-{base}-*")))
    for d in leftovers:
        previous = os.path.join(d, "previous")
        if not os.path.exists(folder) and os.path.isdir(previous):
            os.replace(previous, folder)
    for d in leftovers:
        shutil.rmtree(d, ignore_errors=True)


CLAIM, CLAIM_TEXT = ".claimed-by-a-run", "a run of train.py or tools/calibrate.py writes here: process "


def claim(folder):
    """Claim the output folder `folder` for this process until it exits, by a file inside it (CLAIM,
    holding CLAIM_TEXT and the process id; inside, so that it never takes a name beside the folder that a
    user may own, and a second path to the folder, a symlink, reaches the same file): a second run
    writing into the folder at once would overwrite the first's saves, so it is refused. A claim whose
    process is gone is stale and taken over; a file of that name this project did not write is never
    removed. A folder the claim made and the run left empty is removed at exit."""
    from cli.errors import BadInput   # (the library's error, imported with torch: only runs, which have it, claim)
    made = not os.path.exists(folder)
    os.makedirs(folder, exist_ok=True)
    lock = os.path.join(folder, CLAIM)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, permissions(0o666))
        except FileExistsError:
            pid = _lock_owner(lock)
            if pid is None:
                raise BadInput(f"--out-dir {folder}: {lock} is not a claim a run of this project wrote: "
                               "remove it, or pass another --out-dir")
            if pid == os.getpid():
                return
            if _alive(pid):
                raise BadInput(f"--out-dir {folder} is being written by another run (process {pid}, {lock}): pass "
                               f"another --out-dir, or wait for that run to end (if process {pid} is no run of "
                               f"this project, remove {lock})")
            os.remove(lock)   # a stale claim: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{CLAIM_TEXT}{os.getpid()}\n")
        _held.append((lock, folder if made else None))
        return


_held = []   # this process's claims: (claim file, the folder if the claim made it)


@atexit.register
def release_claims():
    """Give up this process's claims (at exit, and when a command's main() returns: cli.errors.run)."""
    while _held:
        lock, made = _held.pop()
        if _lock_owner(lock) == os.getpid():
            os.remove(lock)
        if made:
            try:
                os.rmdir(made)   # (only if empty: a run refused after its claim leaves no folder behind)
            except OSError:
                pass


def _lock_owner(lock):
    """The process id a claim of this project holds; None for any other file (or a folder)."""
    try:
        with open(lock) as f:
            text = f.read()
        return int(text[len(CLAIM_TEXT):]) if text.startswith(CLAIM_TEXT) else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LOG = "log.jsonl"   # a run's training curve: a JSON line a logged step (cli/progress.py writes it)


def restart_log(out_dir, step=0):
    """The curve of a run starting at `step`: a fresh run's (0) has none; a resumed one keeps the lines
    up to the step its state was saved at (those after it, logged before the kill, come again)."""
    path = os.path.join(out_dir, LOG)
    if os.path.isfile(path):
        keep = [e for e in read_log(out_dir) if e["step"] <= step]
        atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in keep))


def read_log(out_dir):
    """The run's curve: a list of the dicts log_step wrote (empty when it has none); a line a kill cut
    in the middle of its append is left out."""
    path = os.path.join(out_dir, LOG)
    if not os.path.isfile(path):
        return []
    entries = []
    with open(path) as f:
        for line in f:
            try:
                entries.append(json.loads(line))
            except ValueError:   # (half a line, or a blank one)
                continue
    return [e for e in entries if isinstance(e, dict) and "step" in e]
