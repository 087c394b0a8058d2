"""
Bad input ends in one clear line that names the flag or file and the fix, never a traceback.

Library code raises an InputError (data.py; or one of its subclasses, which are also the built-in
error they describe); `run(main)` prints its message as `error: ...` and exits. Any other exception is
a bug and keeps its traceback.
"""

import signal

from data import BadInput, InputError, MissingInput   # (the library's own; named here for the commands' code)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class FetchFailed(InputError, RuntimeError):
    pass


def run(main):
    """Run a script's main(): an InputError ends in `error: ...` on one line, no traceback. Ctrl-C and
    SIGTERM (a scheduler's kill) unwind as KeyboardInterrupt, so that a save under way removes its
    temporary files (storage.files) and the last complete checkpoint and results stay."""
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return main()
    except InputError as e:
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:   # Ctrl-C: what was saved stays as the last evaluation left it
        raise SystemExit("interrupted: the checkpoint and results already written are those of the last "
                         "evaluation; nothing of the unfinished work was saved") from None
    finally:
        signal.signal(signal.SIGTERM, before)
        from storage.files import release_claims   # (storage.files reads this module's errors)
        release_claims()   # the output folder's claim
