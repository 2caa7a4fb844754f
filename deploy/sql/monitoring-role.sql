-- The pgcapacity monitoring role: what `pgcapacity serve` and `check` need,
-- and nothing more.
--
-- Run it as a superuser (or a CREATEROLE role that owns the SigID tables),
-- connected to the SigID database, with the SigID schema in search_path
-- (the default, public, needs nothing):
--
--   psql -v ON_ERROR_STOP=1 -d sigid -f deploy/sql/monitoring-role.sql
--   psql -d sigid -c '\password pgcapacity'
--
-- It can be rerun at any time. Rerun it after partitions are added outside
-- pgcapacity: SELECT is granted on each partition that exists when it runs.
-- A `pgcapacity migrate` swap or rollback carries the grants on partitions
-- itself (by name; new partitions get the grants every old one has).
--
-- What the role gets, and why:
--   pg_monitor          statistics, sizes, settings and the pg_stat_statements
--                       of every session: the stats, sizes and statements
--                       collectors (catalog reads; no table data).
--   SELECT on tenant, invitation, access_review, tenant_membership
--                       the admin-ops checks.
--   SELECT on session, tenant_membership, tenant_subject_identifier, referral,
--   referral_redemption and on each of their partitions
--                       the latency probes run EXPLAIN ANALYZE of tenant-scoped
--                       SELECTs, and pick tenant ids from pg_stats, which shows
--                       a partition's statistics only to roles that may read it.
--   SELECT on schema pgcapacity (when migrate has created it)
--                       migration progress. Its change logs hold rows of the
--                       tables above, which the role reads anyway.
-- Never INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER or any DDL; its
-- transactions are read-only by default and it opens at most 5 connections
-- (serve uses 2).
DO $pgcapacity$
DECLARE
    -- The admin-ops tables, then the hot tables the probes read.
    tables    CONSTANT text[] := ARRAY['tenant', 'invitation', 'access_review', 'tenant_membership',
                                       'session', 'tenant_subject_identifier', 'referral', 'referral_redemption'];
    tbl       text;
    rel       regclass;
    member    record;
    home      name;
    granted   text[] := '{}';
    missing   text[] := '{}';
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcapacity') THEN
        CREATE ROLE pgcapacity LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcapacity' AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)) THEN
        RAISE EXCEPTION 'role pgcapacity exists with more than it needs (superuser, bypassrls, createrole, createdb or replication)'
            USING HINT = 'ALTER ROLE pgcapacity NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION, then rerun this file';
    END IF;
    ALTER ROLE pgcapacity LOGIN INHERIT CONNECTION LIMIT 5;
    ALTER ROLE pgcapacity SET default_transaction_read_only = on;
    IF NOT pg_catalog.pg_has_role('pgcapacity', 'pg_monitor', 'MEMBER') THEN
        GRANT pg_monitor TO pgcapacity;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgcapacity', current_database());

    FOREACH tbl IN ARRAY tables LOOP
        rel := pg_catalog.to_regclass(pg_catalog.quote_ident(tbl));
        IF rel IS NULL THEN
            missing := missing || tbl;
            CONTINUE;
        END IF;
        granted := granted || tbl;
        SELECT n.nspname INTO home FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgcapacity', home);
        -- The table and, when partitioned, every partition at every level.
        FOR member IN
            SELECT n.nspname, c.relname
            FROM (SELECT rel AS relid UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t) m
            JOIN pg_catalog.pg_class c ON c.oid = m.relid
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LOOP
            EXECUTE format('GRANT SELECT ON TABLE %I.%I TO pgcapacity', member.nspname, member.relname);
        END LOOP;
    END LOOP;
    IF cardinality(granted) = 0 THEN
        RAISE EXCEPTION 'none of the SigID tables (%) is in search_path (%) of database %',
            array_to_string(tables, ', '), current_setting('search_path'), current_database()
            USING HINT = 'connect to the SigID database and SET search_path TO its schema before running this file';
    END IF;
    IF cardinality(missing) > 0 THEN
        RAISE WARNING 'not in search_path (%), so not granted: %; the collectors that read them will fail',
            current_setting('search_path'), array_to_string(missing, ', ');
    END IF;
    -- Before PostgreSQL 15 every role may create tables in public.
    IF pg_catalog.has_schema_privilege('pgcapacity', home, 'CREATE') THEN
        RAISE WARNING 'every role may create tables in schema %, pgcapacity too', home
            USING HINT = format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC (the default from PostgreSQL 15 on), then grant CREATE to the roles that need it', home);
    END IF;
    -- pgcapacity names the SigID tables without a schema.
    EXECUTE format('ALTER ROLE pgcapacity IN DATABASE %I SET search_path = %I', current_database(), home);

    -- Migration state: now, and the tables migrate creates later.
    SELECT r.rolname INTO home FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'pgcapacity';
    IF FOUND THEN
        GRANT USAGE ON SCHEMA pgcapacity TO pgcapacity;
        GRANT SELECT ON ALL TABLES IN SCHEMA pgcapacity TO pgcapacity;
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA pgcapacity GRANT SELECT ON TABLES TO pgcapacity', home);
    END IF;
    RAISE NOTICE 'role pgcapacity: pg_monitor, SELECT on % and their partitions', array_to_string(granted, ', ');
END
$pgcapacity$;
