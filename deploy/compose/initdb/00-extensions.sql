-- The compose stack's PostgreSQL: pg_stat_statements (preloaded by the
-- server's command line in compose.yaml) in the SigID database, and the role
-- that owns SigID's tables: a non-superuser owner, as
-- deploy/sql/migrate-role.sql asks for.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'sigid_owner') THEN
        CREATE ROLE sigid_owner NOLOGIN;
    END IF;
END
$$;
-- Only the owner creates tables in public (PostgreSQL 15's default, spelled
-- out for older servers).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CREATE, USAGE ON SCHEMA public TO sigid_owner;
-- The schema file starts with CREATE SCHEMA IF NOT EXISTS, which checks CREATE
-- on the database even when the schema exists.
DO $$
BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO sigid_owner', current_database());
END
$$;
