"""Use-cases: what the shells (`wastate.cli`, `wastate.http`, `wastate.StateManager`) do, written
once so that no rule has two implementations and each shell only translates its input and output.

One module per use-case family:

- `schema`: schema bootstrap (SQLite created/migrated on first use; PostgreSQL never).
- `approvals`: the approval lifecycle over a unit of work (add, move with the `human_in_the_loop`
  guard, approve/reject); `UnitOfWork.approvals` is its `ApprovalLifecycle`.
- `maintenance`: purge and expire in batches, with an exact dry run.
- `state_document`: the seed-004 state-file document (build, stream, parse, restore).
- `state_file`: writing that document to files atomically (export, backup) and reading it back.

Webhook ingest is `wastate.webhooks.ingest(uow, payload)`: one function, called as is by the
HTTP route and by library users.

This package imports nothing at import time: each module is imported by name, so that
`wastate.uow` may use `services.approvals` without importing the rest.
"""
