"""How every packaging check ends: each failure on a `FAIL` line, then one summary line.

Imported by the checks beside it (their directory is on `sys.path` when run as scripts).
"""

from __future__ import annotations


def finish(failures: list[str], ok: str, failed: str = "FAILED") -> int:
    """Prints `failures` and the summary (`ok` when there are none, else `failed`); the exit status."""
    for failure in failures:
        print(f"FAIL {failure}")
    print(failed if failures else ok)
    return 1 if failures else 0
