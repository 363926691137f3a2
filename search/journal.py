"""Durable SQLite journal of every evaluation, appended as it completes.

Row ``i`` is the ``i``-th evaluation of the run: (position, fitness, violation, cost, seed, seconds,
trained). ``trained`` is 0 for a candidate whose cost already violated a constraint, so it was not
fine-tuned (its fitness is -inf, never read); a journal written before that column existed is
read as all-trained (the column is added on open). A re-run of the same command replays rows in
order instead of evaluating again, so a search killed with ``kill -9`` resumes where it was and,
the searcher being deterministic given its seed and the results it is told, reaches the same
final result as an uninterrupted run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bitswarm.errors import BitswarmError, ConfigError

SCHEMA = """CREATE TABLE IF NOT EXISTS evals (
  idx INTEGER PRIMARY KEY, position TEXT NOT NULL, bits TEXT NOT NULL, fitness REAL NOT NULL,
  violation REAL NOT NULL, cost TEXT NOT NULL, seed INTEGER NOT NULL, seconds REAL NOT NULL, created REAL NOT NULL,
  trained INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"""
COLUMNS = "idx, position, bits, fitness, violation, cost, seed, seconds, created, trained"


@dataclass(frozen=True)
class Record:
    idx: int
    position: tuple[int, ...]
    bits: dict
    fitness: float
    violation: float
    cost: dict
    seed: int
    seconds: float
    trained: bool = True


SQLITE_HEADER = b"SQLite format 3\x00"


def _unreadable(path: Path, why: str) -> ConfigError:
    return ConfigError(str(path), "journal", f"not a readable bitswarm journal ({why})",
                       f"delete the run dir {path.parent} to start afresh, or use a new --run-dir / --out")


def check_journal_file(path: str | Path) -> None:
    """Before any long work: an existing ``journal.sqlite`` must at least be an SQLite file."""
    path = Path(path)
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise _unreadable(path, "file is not an SQLite database")


class Journal:
    def __init__(self, path: str | Path, run_signature: dict):
        self.path = Path(path)
        check_journal_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self._add_trained_column()
            self._check_signature(run_signature)
            self.records = [self._row(r) for r in self.db.execute(f"SELECT {COLUMNS} FROM evals ORDER BY idx")]
        except (sqlite3.DatabaseError, ValueError, TypeError, IndexError) as e:
            self.db.close()
            if isinstance(e, BitswarmError):  # the signature mismatch (a ConfigError) as it is
                raise
            raise _unreadable(self.path, f"{type(e).__name__}: {e}") from e

    def _add_trained_column(self) -> None:
        """A journal from before the ``trained`` column: every evaluation in it was trained."""
        if "trained" not in {r[1] for r in self.db.execute("PRAGMA table_info(evals)")}:
            self.db.execute("ALTER TABLE evals ADD COLUMN trained INTEGER NOT NULL DEFAULT 1")

    def _check_signature(self, sig: dict) -> None:
        blob = json.dumps(sig, sort_keys=True)
        row = self.db.execute("SELECT value FROM meta WHERE key='signature'").fetchone()
        if row is None and self.db.execute("SELECT COUNT(*) FROM evals").fetchone()[0]:
            raise ConfigError(str(self.path), "signature", "this journal holds evaluations but no run signature, so "
                              "what they were measured under is unknown", "a new --run-dir (or delete the journal)")
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('signature', ?)", (blob,))
        elif row[0] != blob:
            old = json.loads(row[0])
            diff = sorted(k for k in set(old) | set(sig) if old.get(k) != sig.get(k))
            raise ConfigError(str(self.path), "run settings", f"this journal belongs to a run with other {diff}",
                              "the same command to resume, or a new --run-dir")

    @staticmethod
    def _row(r) -> Record:
        return Record(r[0], tuple(json.loads(r[1])), json.loads(r[2]), r[3], r[4], json.loads(r[5]), r[6], r[7],
                      bool(r[9]))

    def append(self, position, bits: dict, fitness: float, violation: float, cost: dict, seed: int,
               seconds: float, trained: bool = True) -> Record:
        rec = Record(len(self.records), tuple(position), bits, float(fitness), float(violation), cost, seed, seconds,
                     bool(trained))
        self.db.execute(f"INSERT INTO evals ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (rec.idx, json.dumps(list(rec.position)), json.dumps(bits), rec.fitness, rec.violation,
                         json.dumps(cost), seed, seconds, time.time(), int(rec.trained)))
        self.records.append(rec)
        return rec

    def close(self) -> None:
        self.db.close()
