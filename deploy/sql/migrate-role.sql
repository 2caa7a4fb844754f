-- The role `pgcapacity migrate` runs as. Separate from the monitoring role
-- (monitoring-role.sql): the exporter never holds these rights.
--
-- Run it as a superuser, connected to the SigID database, with the SigID
-- schema in search_path (the default, public, needs nothing):
--
--   psql -v ON_ERROR_STOP=1 -d sigid -f deploy/sql/migrate-role.sql
--   psql -d sigid -c '\password pgcapacity_migrate'
--
-- Use the role only for a migration's lifetime; `ALTER ROLE
-- pgcapacity_migrate NOLOGIN` between migrations. Rerunnable.
--
-- What the role gets, and why:
--   membership in the role that owns the SigID hash-partitioned tables
--                       a repartition creates the new table and its
--                       partitions, installs capture triggers, renames both
--                       tables, moves views, foreign keys, grants and sequence
--                       ownership, and finally drops the old table: PostgreSQL
--                       allows all of that only to the owner. The owner must
--                       not be a superuser, and must have CREATE on the schema.
--   CREATE on the database
--                       migrate keeps its state and change logs in its own
--                       schema, pgcapacity (created here, owned by this role;
--                       migrate's CREATE SCHEMA IF NOT EXISTS still checks it).
--   pg_read_all_stats   `migrate plan` reads planning time from
--                       pg_stat_statements to judge a decrease.
-- Never superuser, CREATEROLE, REPLICATION or BYPASSRLS: as a member of the
-- owner it reads every row of the tables it migrates (row security does not
-- apply to owners unless forced, and migrate refuses forced tables' hidden rows).
-- The monitoring role, when it exists, may read the state schema.
DO $pgcapacity$
DECLARE
    hot   CONSTANT text[] := ARRAY['session', 'tenant_membership', 'tenant_subject_identifier', 'referral', 'referral_redemption'];
    tbl   text;
    rel   regclass;
    owner record;
    home  name;
    granted text[] := '{}';
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcapacity_migrate') THEN
        CREATE ROLE pgcapacity_migrate LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcapacity_migrate' AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolreplication)) THEN
        RAISE EXCEPTION 'role pgcapacity_migrate exists with more than it needs (superuser, bypassrls, createrole or replication)'
            USING HINT = 'ALTER ROLE pgcapacity_migrate NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOREPLICATION, then rerun this file';
    END IF;
    ALTER ROLE pgcapacity_migrate INHERIT;

    FOREACH tbl IN ARRAY hot LOOP
        rel := pg_catalog.to_regclass(pg_catalog.quote_ident(tbl));
        CONTINUE WHEN rel IS NULL;
        granted := granted || tbl;
        SELECT n.nspname INTO home FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
        SELECT r.rolname, r.rolsuper INTO owner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner WHERE c.oid = rel;
        IF owner.rolsuper THEN
            RAISE EXCEPTION 'table %.% is owned by superuser %: membership in it would make pgcapacity_migrate as powerful', home, tbl, owner.rolname
                USING HINT = format('give the SigID tables a non-superuser owner (CREATE ROLE sigid_owner NOLOGIN; GRANT CREATE, USAGE ON SCHEMA %I TO sigid_owner; ALTER TABLE ... OWNER TO sigid_owner for each table), then rerun this file', home);
        END IF;
        IF NOT pg_catalog.has_schema_privilege(owner.rolname, home, 'CREATE') THEN
            RAISE EXCEPTION 'role %, owner of %.%, cannot create tables in schema %, so the new table cannot be given to it', owner.rolname, home, tbl, home
                USING HINT = format('GRANT CREATE ON SCHEMA %I TO %I, then rerun this file', home, owner.rolname);
        END IF;
        IF NOT pg_catalog.pg_has_role('pgcapacity_migrate', owner.rolname, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO pgcapacity_migrate', owner.rolname);
        END IF;
    END LOOP;
    IF cardinality(granted) = 0 THEN
        RAISE EXCEPTION 'none of the SigID tables (%) is in search_path (%) of database %',
            array_to_string(hot, ', '), current_setting('search_path'), current_database()
            USING HINT = 'connect to the SigID database and SET search_path TO its schema before running this file';
    END IF;

    EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO pgcapacity_migrate', current_database());
    IF NOT pg_catalog.pg_has_role('pgcapacity_migrate', 'pg_read_all_stats', 'MEMBER') THEN
        GRANT pg_read_all_stats TO pgcapacity_migrate;
    END IF;
    CREATE SCHEMA IF NOT EXISTS pgcapacity AUTHORIZATION pgcapacity_migrate;
    IF EXISTS (SELECT FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
               WHERE n.nspname = 'pgcapacity' AND r.rolname <> 'pgcapacity_migrate') THEN
        RAISE EXCEPTION 'schema pgcapacity exists and is not owned by pgcapacity_migrate'
            USING HINT = 'ALTER SCHEMA pgcapacity OWNER TO pgcapacity_migrate (and its tables), then rerun this file';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcapacity') THEN
        GRANT USAGE ON SCHEMA pgcapacity TO pgcapacity;
        GRANT SELECT ON ALL TABLES IN SCHEMA pgcapacity TO pgcapacity;
        ALTER DEFAULT PRIVILEGES FOR ROLE pgcapacity_migrate IN SCHEMA pgcapacity GRANT SELECT ON TABLES TO pgcapacity;
    END IF;
    RAISE NOTICE 'role pgcapacity_migrate: owner of % (through membership), state schema pgcapacity', array_to_string(granted, ', ');
END
$pgcapacity$;
