"""In-file dedupe with flat memory: the identifiers seen so far live in a scratch file.

An import remembers every identifier (phone, email, customer ID) of every row it took, to
skip a later row of the same customer as "Same customer as line N". Held in a dict that is
~100 bytes per identifier: 300 MB for a million-row file. This keeps them instead in a
private SQLite file (stdlib ``sqlite3``, no journal, no fsync, a bounded page cache) in the
system temp directory, removed when the import ends: memory stays flat whatever the file's
size, at one indexed lookup and one batched insert (one transaction) per batch of rows.

Fingerprints are 64-bit hashes of (kind, value), compared only within one process's run of
one import (the odds of a false "same customer" are ~n²/2⁶⁵: negligible at a million rows).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Sequence

# Keep each IN (...) well under SQLite's 32,766 bound variables.
_CHUNK = 5000


def fingerprint(kind: str, value: str) -> int:
    return hash((kind, value))


class SeenIdentifiers:
    def __init__(self, *, cache_kib: int = 16_384) -> None:
        handle, self.path = tempfile.mkstemp(prefix="personas-import-", suffix=".sqlite3")
        os.close(handle)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        self.db.execute(
            "CREATE TABLE seen (fp INTEGER PRIMARY KEY, line INTEGER NOT NULL, "
            "person INTEGER NOT NULL DEFAULT 0)"
        )

    def first_lines(self, rows: Sequence[tuple[int, Sequence[int]]]) -> dict[int, int]:
        """For rows (line, fingerprints) in file order: line → the earlier line of the same
        customer, for each row that repeats one; every other row's fingerprints are recorded.

        "Earlier" covers both previous batches and earlier rows of this batch.
        """
        return {
            line: first for line, (first, _) in self.match([(ln, p, 0) for ln, p in rows]).items()
        }

    def match(self, rows: Sequence[tuple[int, Sequence[int], int]]) -> dict[int, tuple[int, bool]]:
        """``first_lines`` for rows (line, fingerprints, person): line → (the earlier line
        holding one of its identifiers, whether that line was a different person). ``person``
        is a fingerprint of who the row names (0: no name): two rows with one identifier and
        different names are strangers sharing a placeholder, not one customer."""
        wanted = list({fp for _, prints, _ in rows for fp in prints})
        known: dict[int, tuple[int, int]] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor = self.db.execute(
                f"SELECT fp, line, person FROM seen WHERE fp IN ({marks})",  # noqa: S608
                chunk,
            )
            known.update((fp, (line, person)) for fp, line, person in cursor)
        repeats: dict[int, tuple[int, bool]] = {}
        new: dict[int, tuple[int, int]] = {}
        for line, prints, person in rows:
            first = None
            for fp in prints:
                first = known.get(fp) or new.get(fp)
                if first is not None:
                    break
            if first is not None:
                repeats[line] = (first[0], bool(person and first[1] and person != first[1]))
                continue
            for fp in prints:
                new[fp] = (line, person)
        if new:
            # One transaction per batch (autocommit would write the pages out after every
            # row); in key order, so each insert lands next to the previous one.
            self.db.execute("BEGIN")
            try:
                self.db.executemany(
                    "INSERT INTO seen (fp, line, person) VALUES (?, ?, ?)",
                    sorted((fp, line, person) for fp, (line, person) in new.items()),
                )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return repeats

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __del__(self) -> None:  # a run that raised still removes its scratch file
        if getattr(self, "db", None) is not None and os.path.exists(self.path):
            self.close()
