"""Write the next schema revision, for both engines, from a change to inbox/store/schema.py (#17).

    .venv/bin/python scripts/revision.py "add conversations.language"

Starts a throwaway PostgreSQL cluster (tests/pg_cluster.py), brings a fresh database to the newest
revision, and lets Alembic compare it with the description: what differs is written as the next
revision in inbox/store/revisions/versions/, in batch mode so that it runs on SQLite too (SQLite
files take the revisions after their frozen chain's baseline: inbox/store/sqlite_schema.py). Read it
before committing (Alembic cannot see an index on an expression or a renamed column, and writes a
rename as a drop and an add); tests/test_schema.py and tests/test_pg_schema.py fail until both
engines match the description.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from inbox.store import pg_schema  # noqa: E402
from tests.pg_cluster import ThrowawayCluster  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        sys.exit(__doc__)
    message = sys.argv[1].strip()
    versions = Path(pg_schema.__file__).with_name("revisions") / "versions"
    numbers = [int(match.group(1)) for path in versions.glob("*.py") if (match := re.match(r"(\d{4})_", path.name))]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    differs = []

    def unless_empty(context, revision, directives) -> None:  # noqa: ANN001 - Alembic's hook
        if directives[0].upgrade_ops.is_empty():
            directives[:] = []
        differs.extend(directives)

    with ThrowawayCluster() as url:
        pg_schema.upgrade(url)
        engine = create_engine(pg_schema.sqlalchemy_url(url))
        with engine.connect() as connection:
            config = pg_schema.alembic_config(connection)
            config.attributes["process_revision_directives"] = unless_empty
            script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        engine.dispose()
    if not differs:
        sys.exit("inbox/store/schema.py and PostgreSQL's migrations already agree: nothing written")
    print(f"wrote {script.path}: read it, then run tests/test_pg_schema.py")


if __name__ == "__main__":
    main()
