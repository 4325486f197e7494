"""PostgreSQL roles for a model's SQL: what makes a role more than a reader (`role_problems`), and
creating one that is a reader and nothing else (`create_reader_role`, behind `text2sql db role`).

A role fit for model SQL can connect, see the chosen schemas and SELECT from their tables. Anything
more is a way out of the sandbox should another layer fail: a superuser or a member of
pg_read_server_files / pg_write_server_files / pg_execute_server_program reaches the server's files
and programs, pg_signal_backend ends other sessions, and a role that can write, create or owns
objects can change what the next query sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from text2sql.errors import ConfigError, DataError, first_line
from text2sql.sql.targets import postgres_parts, redact

# Predefined roles that reach outside the database or other sessions; a member of one (directly or
# through another role) is refused. Those a server version lacks are skipped.
OUTSIDE_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_write_all_data",
    "pg_checkpoint",
)

# Every privilege beyond reading that `role` (NULL: the current user) holds in the current database,
# most serious first: (what it holds, the statement that takes it away). Table-level and column-level
# grants both count, and so does membership, inherited or not (the role could SET ROLE to it). The
# system catalogs' own grants are left out: every role may UPDATE pg_settings (which is SET); so are
# temporary tables (any session's, gone when it ends).
_PROBLEMS_SQL = """
WITH me AS (
    SELECT oid, rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication
    FROM pg_roles WHERE rolname = COALESCE(%(role)s::text, current_user::text)
), found AS (
    SELECT 1 AS rank, 'is a superuser' AS held, format('ALTER ROLE %%I NOSUPERUSER', rolname) AS fix
    FROM me WHERE rolsuper
    UNION ALL SELECT 2, 'may create roles (CREATEROLE)', format('ALTER ROLE %%I NOCREATEROLE', rolname)
    FROM me WHERE rolcreaterole
    UNION ALL SELECT 2, 'may create databases (CREATEDB)', format('ALTER ROLE %%I NOCREATEDB', rolname)
    FROM me WHERE rolcreatedb
    UNION ALL SELECT 2, 'may replicate (REPLICATION)', format('ALTER ROLE %%I NOREPLICATION', rolname)
    FROM me WHERE rolreplication
    UNION ALL SELECT 3, format('is a member of %%I', g.rolname),
        format('REVOKE %%I FROM %%I', g.rolname, me.rolname)
    FROM me, pg_roles g
    WHERE g.rolname = ANY(%(outside)s) AND NOT me.rolsuper AND pg_has_role(me.oid, g.oid, 'MEMBER')
    UNION ALL SELECT 4, format('owns the database %%I', d.datname),
        format('ALTER DATABASE %%I OWNER TO another role', d.datname)
    FROM me, pg_database d
    WHERE d.datname = current_database() AND NOT me.rolsuper AND pg_has_role(me.oid, d.datdba, 'MEMBER')
    UNION ALL SELECT 4, format('holds CREATE on the database %%I', current_database()),
        format('REVOKE CREATE ON DATABASE %%I FROM %%s', current_database(),
               CASE WHEN d.public_create THEN 'PUBLIC' ELSE quote_ident(me.rolname) END)
    FROM me, (SELECT EXISTS (SELECT 1 FROM pg_database, aclexplode(datacl) a
                             WHERE datname = current_database() AND a.grantee = 0 AND a.privilege_type = 'CREATE')
              AS public_create) d
    WHERE NOT me.rolsuper AND has_database_privilege(me.oid, current_database(), 'CREATE')
    UNION ALL SELECT 5, format('owns the schema %%I', n.nspname),
        format('ALTER SCHEMA %%I OWNER TO another role', n.nspname)
    FROM me, pg_namespace n
    WHERE NOT me.rolsuper AND pg_has_role(me.oid, n.nspowner, 'MEMBER')
    UNION ALL SELECT 5, format('holds CREATE on the schema %%I', n.nspname),
        format('REVOKE CREATE ON SCHEMA %%I FROM %%s', n.nspname,
               CASE WHEN EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a
                                 WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')
                    THEN 'PUBLIC' ELSE quote_ident(me.rolname) END)
    FROM me, pg_namespace n
    WHERE NOT me.rolsuper AND n.nspname !~ '^pg_(toast_)?temp_' AND has_schema_privilege(me.oid, n.oid, 'CREATE')
    UNION ALL SELECT 6, format('owns %%s', c.oid::regclass),
        format('ALTER TABLE %%s OWNER TO another role', c.oid::regclass)
    FROM me, pg_class c
    WHERE NOT me.rolsuper AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relpersistence <> 't'
        AND pg_has_role(me.oid, c.relowner, 'MEMBER')
    UNION ALL SELECT 7, format('holds %%s on %%s', array_to_string(p.privileges, ', '), c.oid::regclass),
        format('REVOKE %%s ON %%s FROM %%s', array_to_string(p.privileges, ', '), c.oid::regclass,
               quote_ident(me.rolname))
    FROM me, pg_class c,
    LATERAL (SELECT ARRAY(
        SELECT w FROM unnest(ARRAY['INSERT', 'UPDATE', 'REFERENCES']) w
        WHERE has_any_column_privilege(me.oid, c.oid, w)
        UNION ALL
        SELECT w FROM unnest(ARRAY['DELETE', 'TRUNCATE', 'TRIGGER']) w WHERE has_table_privilege(me.oid, c.oid, w)
    ) AS privileges) p
    WHERE NOT me.rolsuper AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND cardinality(p.privileges) > 0
        AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    UNION ALL SELECT 7, format('holds USAGE or UPDATE on the sequence %%s', c.oid::regclass),
        format('REVOKE USAGE, UPDATE ON SEQUENCE %%s FROM %%s', c.oid::regclass, quote_ident(me.rolname))
    FROM me, pg_class c
    WHERE NOT me.rolsuper AND c.relkind = 'S' AND has_sequence_privilege(me.oid, c.oid, 'USAGE, UPDATE')
    UNION ALL SELECT 8, format('holds USAGE on the foreign server %%I', s.srvname),
        format('REVOKE USAGE ON FOREIGN SERVER %%I FROM %%s', s.srvname, quote_ident(me.rolname))
    FROM me, pg_foreign_server s
    WHERE NOT me.rolsuper AND has_server_privilege(me.oid, s.oid, 'USAGE')
)
SELECT held, fix FROM found ORDER BY rank, held
"""


@dataclass(frozen=True)
class Problem:
    """One privilege beyond reading: what the role holds, and the statement that takes it away."""

    held: str
    fix: str


def role_problems(cursor: Any, role: str | None = None) -> list[Problem]:
    """Every privilege beyond reading that `role` (None: the connected user) holds in the database
    of `cursor`'s connection, most serious first; empty for a reader. Raises psycopg's errors."""
    cursor.execute(_PROBLEMS_SQL, {"role": role, "outside": list(OUTSIDE_ROLES)})
    return [Problem(held, fix) for held, fix in cursor.fetchall()]


def describe(problems: Sequence[Problem]) -> str:
    """The first problem, and how many more there are."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0].held + more


# ---------------------------------------------------------------------- creating a reader


@dataclass(frozen=True)
class ReaderRole:
    """How a created role is used: its URL (no password in it) and what it was given."""

    url: str
    name: str
    schemas: tuple[str, ...]
    temp_file_limit: str | None = None  # set only when the admin is a superuser (PostgreSQL's rule)


def create_reader_role(
    admin_url: str,
    name: str,
    *,
    schemas: Sequence[str] = ("public",),
    statement_timeout: str = "5s",
    connection_limit: int = 8,
    password: str | None = None,
    force: bool = False,
    temp_file_limit: str = "1GB",
) -> ReaderRole:
    """Create the LOGIN role `name` on the server of `admin_url` (connected as an admin) that may
    connect to its database, use `schemas` and SELECT from their tables, present and future (those
    the admin creates), and nothing else; every session of it is read-only with `statement_timeout`
    and at most `connection_limit` at once, and, when the admin is a superuser (only one may set it),
    its temporary files are capped at `temp_file_limit`: a query that sorts or materialises a huge
    result then fails instead of filling the server's disk. All of it happens in one transaction that is committed
    only when the new role passes `role_problems`, so a refusal leaves the server as it was.

    An existing role is refused unless `force` (then it is given the same settings and grants; what
    it held before and `role_problems` finds is named, not taken away). Raises ConfigError or
    DataError with one line and the fix; ConnectionError when the server cannot be reached."""
    from text2sql.sql.postgres import connection_error, require_psycopg

    psycopg = require_psycopg()
    sql = psycopg.sql
    if connection_limit < 1:
        raise ConfigError(f"--connection-limit {connection_limit}: give at least 1")
    url, url_schema = postgres_parts(admin_url)
    chosen = tuple(dict.fromkeys(schemas or (url_schema,)))
    try:
        conn = psycopg.connect(url, connect_timeout=5, autocommit=False)
    except psycopg.Error as exc:
        raise ConnectionError(connection_error(admin_url, exc)) from None
    role = sql.Identifier(name)
    try:
        with conn, conn.cursor() as cur:
            database = cur.execute("SELECT current_database()").fetchone()[0]
            missing = [
                s for s in chosen if not cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (s,)).fetchone()
            ]
            if missing:
                raise DataError(
                    f"no schema {missing[0]!r} in the database {database!r}; give an existing one with --schema"
                )
            exists = cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None
            if exists and not force:
                raise DataError(f"the role {name!r} exists already on {redact(url)}; pick another name or pass --force")
            options = sql.SQL(
                "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT {}"
            ).format(sql.Literal(connection_limit))
            if password is not None:
                # Sent hashed (SCRAM), so the password itself is never in a statement the server could log.
                hashed = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()
                options = sql.SQL("{} PASSWORD {}").format(options, sql.Literal(hashed))
            verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
            cur.execute(sql.SQL("{} {} {}").format(verb, role, options))
            cur.execute(
                sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(role, sql.Literal(statement_timeout))
            )
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
            superuser = cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
            if superuser:
                cur.execute(
                    sql.SQL("ALTER ROLE {} SET temp_file_limit = {}").format(role, sql.Literal(temp_file_limit))
                )
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role))
            for schema in chosen:
                ident = sql.Identifier(schema)
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, role))
                cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident, role))
                cur.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(ident, role)
                )
            problems = role_problems(cur, name)
            if problems:
                first = problems[0]
                raise DataError(
                    f"the new role {name!r} {describe(problems)}, which model SQL must not have; "
                    f"{first.fix} (as an admin) and run this again; nothing was changed"
                )
    except psycopg.Error as exc:
        raise DataError(f"cannot create the role {name!r} on {redact(url)}: {first_line(exc)}") from None
    finally:
        conn.close()
    limit = temp_file_limit if superuser else None
    return ReaderRole(url=_url_for(url, name, chosen), name=name, schemas=chosen, temp_file_limit=limit)


def _url_for(url: str, name: str, schemas: tuple[str, ...]) -> str:
    """`url` with `name` as its user, no password, and the schema when there is one to name."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if len(schemas) == 1 and schemas[0] != "public":
        query = "&".join(q for q in (query, f"schema={quote(schemas[0])}") if q)
    return urlunsplit((parts.scheme, f"{quote(name, safe='')}@{host}", parts.path, query, parts.fragment))
