"""`text2sql db role URL NAME`: a PostgreSQL role for a model's SQL, one that can read and nothing else.

    text2sql db role "postgresql://admin@db/shop" text2sql_reader --password-env READER_PASSWORD
    text2sql db role "postgresql://admin@db/bundled" reader --schema concert_singer --schema pets_1

Connects as the admin in URL and creates NAME (`text2sql.sql.roles.create_reader_role`), then prints
the URL to give text2sql (no password in it).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from text2sql.errors import ConfigError

_DURATION = re.compile(r"^\d+(\.\d+)?\s*(us|ms|s|min|h|d)?$")


def add_role_parser(actions: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    r = actions.add_parser(
        "role",
        parents=list(parents),
        help="create a PostgreSQL role that may only read (CONNECT, USAGE, SELECT), for a model's SQL",
    )
    r.add_argument("url", metavar="URL", help="postgresql://admin@host/db: a role allowed to create roles and grant")
    r.add_argument("name", metavar="NAME", help="the role to create")
    r.add_argument(
        "--schema",
        action="append",
        dest="schemas",
        metavar="S",
        help="a schema whose tables it may read (repeat for several; default: the URL's ?schema=, else public)",
    )
    r.add_argument(
        "--statement-timeout",
        default="5s",
        metavar="T",
        help="longest statement of any of its sessions, as PostgreSQL writes it (default: 5s)",
    )
    r.add_argument(
        "--connection-limit", type=int, default=8, metavar="N", help="its sessions at once at most (default: 8)"
    )
    r.add_argument(
        "--password-env",
        metavar="VAR",
        help="the environment variable holding its password (default: none, for peer or certificate login)",
    )
    r.add_argument("--force", action="store_true", help="give an existing role these settings and grants")
    r.set_defaults(func=run_role)


def run_role(args: argparse.Namespace) -> int:
    from text2sql.sql.roles import create_reader_role
    from text2sql.sql.targets import dialect_of, postgres_parts

    if dialect_of(args.url) != "postgres":
        raise ConfigError(f"{args.url}: roles are PostgreSQL's; give a postgresql:// URL")
    if not _DURATION.match(args.statement_timeout.strip()):
        raise ConfigError(f"--statement-timeout {args.statement_timeout!r}: give a duration such as 5s, 500ms or 1min")
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise ConfigError(f"--password-env {args.password_env}: that environment variable is not set or empty")
    schemas = args.schemas or [postgres_parts(args.url)[1]]
    try:
        role = create_reader_role(
            args.url,
            args.name,
            schemas=schemas,
            statement_timeout=args.statement_timeout.strip(),
            connection_limit=args.connection_limit,
            password=password,
            force=args.force,
        )
    except ConnectionError as exc:
        raise ConfigError(str(exc)) from None
    print(
        f"the role {role.name} is ready: it may read {', '.join(role.schemas)} and nothing else; "
        f"every session read-only, statements stopped after {args.statement_timeout.strip()}",
        file=sys.stderr,
    )
    if role.temp_file_limit:
        print(f"its temporary files are capped at {role.temp_file_limit}", file=sys.stderr)
    else:
        print(
            "its temporary files are not capped (only a superuser may set temp_file_limit): a superuser can run "
            f"ALTER ROLE {role.name} SET temp_file_limit = '1GB'",
            file=sys.stderr,
        )
    print("its password goes in ~/.pgpass or PGPASSWORD, never in the URL; use:", file=sys.stderr)
    print(role.url)
    return 0
