"""What the store's mixins share: the engine they run on, the meta table's key/value
access, and `_transition`, the conditional UPDATE every job state change goes through."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from oracle.store.schema import hex32, jobs, meta


class StoreBase:
    """The engine and helpers `Store` and its mixins share; `Store.__init__` sets them."""

    url: str
    engine: Engine

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        if conn.execute(select(meta.c.key).where(meta.c.key == key)).first() is None:
            conn.execute(insert(meta).values(key=key, value=value))
        else:
            conn.execute(update(meta).where(meta.c.key == key).values(value=value))

    # ------------------------------------------------------------------ job transitions

    def _transition(
        self, job_id: int, allowed: Sequence[str], root: bytes | None = None, **values: Any
    ) -> bool:
        """Moves a job whose state is in `allowed` (and whose root is `root`, if given);
        returns whether it moved. A repeated transition is a no-op returning False."""
        values.setdefault("updated_at", time.time())
        query = update(jobs).where(jobs.c.job_id == job_id, jobs.c.state.in_(list(allowed)))
        if root is not None:
            query = query.where(jobs.c.result_root == hex32(root))
        with self.engine.begin() as conn:
            return bool(conn.execute(query.values(**values)).rowcount)
