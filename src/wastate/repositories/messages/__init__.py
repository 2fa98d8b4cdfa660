"""Message tracking: tracked messages, their delivery status, its history, and parked events.

One module per idea:

- `repository.py`: `MessageRepository`, the public API: the reads plus the writer of its
  database's dialect, chosen once at construction;
- `reads.py`: the reads and lookups, alike on both databases (`MessageReader`);
- `postgres.py` / `postgres_sql.py`: the PostgreSQL writer and its statements (one statement per
  batch, prepared on the driver; probe rows so parking and tracking cannot miss each other);
- `sqlite.py`: the SQLite writer and its statements (one `executemany` per step under SQLite's
  write lock);
- `rule.py`: the status rule in SQL, the only place it is written;
- `rows.py`: tables, column lists, a new message as its row and as its record, rows as records;
- `inputs.py`: caller input validated into `NewMessage`s and events;
- `results.py`: what the batch writes answer.

`tests/unit/test_sql_snapshots.py` keeps every statement as rendered for each dialect under
`tests/snapshots/sql/`, so a change to generated SQL shows in review.
"""

from wastate.repositories.messages.repository import MessageRepository
from wastate.repositories.messages.results import StatusBatchResult, TrackBatchResult

__all__ = ["MessageRepository", "StatusBatchResult", "TrackBatchResult"]
