-- The pgcapacity monitoring role: what `pgcapacity serve` and `check` need,
-- and nothing more.
--
-- Run it as a superuser (or a CREATEROLE role that owns the watched tables),
-- connected to the database, with the admin-ops tables' schema in
-- search_path (the default, public, needs nothing):
--
--   psql -v ON_ERROR_STOP=1 -d sigid -f deploy/sql/monitoring-role.sql
--   psql -d sigid -c '\password pgcapacity'
--
-- The hot tables (whose partitions the probes read) are SigID's unless
-- hot_tables names them as PGCAPACITY_HOT_TABLES does: comma-separated,
-- table or schema.table, * and ? globs, an unqualified name matching in any
-- schema. Give it the same value as the exporter's PGCAPACITY_HOT_TABLES:
--
--   psql -v ON_ERROR_STOP=1 -v hot_tables='pgbench_accounts' -d bench -f deploy/sql/monitoring-role.sql
--   psql -v ON_ERROR_STOP=1 -v hot_tables='app.events,app.orders_*' -d app -f deploy/sql/monitoring-role.sql
--
-- It can be rerun at any time. Rerun it after partitions are added outside
-- pgcapacity, or hot tables created: SELECT is granted on each table and
-- partition that exists when it runs. A `pgcapacity migrate` swap or
-- rollback carries the grants on partitions itself (by name; new partitions
-- get the grants every old one has).
--
-- What the role gets, and why:
--   pg_monitor          statistics, sizes, settings and the pg_stat_statements
--                       of every session: the stats, sizes and statements
--                       collectors (catalog reads; no table data).
--   SELECT on tenant, invitation, access_review, tenant_membership (those in
--   search_path)        the admin-ops checks; on a database without them the
--                       checks are not applicable, not failing.
--   SELECT on the hot tables (hot_tables; by default session,
--   tenant_membership, tenant_subject_identifier, referral*) and on each of
--   their partitions    the latency probes run EXPLAIN ANALYZE of tenant-scoped
--                       SELECTs, and pick tenant ids from pg_stats, which shows
--                       a partition's statistics only to roles that may read it.
--   SELECT on schema pgcapacity (when migrate has created it)
--                       migration progress. Its change logs hold rows of the
--                       tables above, which the role reads anyway.
-- Never INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER or any DDL; its
-- transactions are read-only by default and it opens at most 5 connections
-- (serve uses 2).
\if :{?hot_tables}
\else
\set hot_tables 'session,tenant_membership,tenant_subject_identifier,referral*'
\endif
-- psql does not substitute variables inside the DO body: hand it over as a
-- session setting.
SELECT pg_catalog.set_config('pgcapacity.hot_tables', :'hot_tables', false) AS pgcapacity_hot_tables \gset
DO $pgcapacity$
DECLARE
    -- The admin-ops checks' tables, named without a schema by their queries.
    adminops  CONSTANT text[] := ARRAY['tenant', 'invitation', 'access_review', 'tenant_membership'];
    patterns  CONSTANT text[] := array_remove(string_to_array(replace(current_setting('pgcapacity.hot_tables'), ' ', ''), ','), '');
    pattern   text;
    tbl       text;
    rel       regclass;
    rels      regclass[] := '{}';
    member    record;
    home      name;
    schemas   name[] := '{}';
    granted   text[] := '{}';
    missing   text[] := '{}';
    unmatched text[] := '{}';
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

    -- The admin-ops tables, as their queries find them: through search_path.
    FOREACH tbl IN ARRAY adminops LOOP
        rel := pg_catalog.to_regclass(pg_catalog.quote_ident(tbl));
        IF rel IS NULL THEN
            missing := missing || tbl;
        ELSE
            rels := rels || rel;
        END IF;
    END LOOP;
    -- The hot tables, matched as PGCAPACITY_HOT_TABLES matches them: the
    -- glob against the table name, or schema and table when qualified.
    FOREACH pattern IN ARRAY patterns LOOP
        tbl := NULL;
        FOR rel IN
            SELECT c.oid::regclass
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
              AND CASE WHEN strpos(pattern, '.') > 0
                  THEN n.nspname::text ~ ('^' || replace(replace(regexp_replace(split_part(pattern, '.', 1), '([][\\^$.|+(){}])', '\\\1', 'g'), '*', '.*'), '?', '.') || '$')
                   AND c.relname::text ~ ('^' || replace(replace(regexp_replace(substr(pattern, strpos(pattern, '.') + 1), '([][\\^$.|+(){}])', '\\\1', 'g'), '*', '.*'), '?', '.') || '$')
                  ELSE c.relname::text ~ ('^' || replace(replace(regexp_replace(pattern, '([][\\^$.|+(){}])', '\\\1', 'g'), '*', '.*'), '?', '.') || '$')
              END
        LOOP
            tbl := rel::text;
            IF NOT rel = ANY (rels) THEN
                rels := rels || rel;
            END IF;
        END LOOP;
        IF tbl IS NULL THEN
            unmatched := unmatched || pattern;
        END IF;
    END LOOP;

    FOREACH rel IN ARRAY rels LOOP
        granted := granted || rel::text;
        SELECT n.nspname INTO home FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
        IF NOT home = ANY (schemas) THEN
            schemas := schemas || home;
        END IF;
        -- The table and, when partitioned, every partition at every level.
        FOR member IN
            SELECT n.nspname, c.relname
            FROM (SELECT rel AS relid UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t) m
            JOIN pg_catalog.pg_class c ON c.oid = m.relid
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LOOP
            IF NOT member.nspname = ANY (schemas) THEN
                schemas := schemas || member.nspname;
            END IF;
            EXECUTE format('GRANT SELECT ON TABLE %I.%I TO pgcapacity', member.nspname, member.relname);
        END LOOP;
    END LOOP;
    IF cardinality(granted) = 0 THEN
        RAISE EXCEPTION 'none of the SigID tables (%) is in search_path (%) of database %, and no table matches the hot-table patterns (%)',
            array_to_string(adminops, ', '), current_setting('search_path'), current_database(), array_to_string(patterns, ', ')
            USING HINT = 'connect to the SigID database and SET search_path TO its schema before running this file; on another database pass its hot tables as PGCAPACITY_HOT_TABLES names them: psql -v hot_tables=''schema.table,...'' -f monitoring-role.sql';
    END IF;
    IF cardinality(missing) > 0 THEN
        RAISE NOTICE 'admin-ops tables not in search_path (%): %; their checks are not applicable here (pgcapacity_adminops_check_applicable 0), not failing',
            current_setting('search_path'), array_to_string(missing, ', ');
    END IF;
    IF cardinality(unmatched) > 0 THEN
        RAISE WARNING 'hot-table patterns matching no table of database %: %; those tables get no probe',
            current_database(), array_to_string(unmatched, ', ')
            USING HINT = 'pass this database''s hot tables, as PGCAPACITY_HOT_TABLES names them: psql -v hot_tables=''schema.table,...'' -f monitoring-role.sql';
    END IF;
    FOREACH home IN ARRAY schemas LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgcapacity', home);
        -- Before PostgreSQL 15 every role may create tables in public.
        IF pg_catalog.has_schema_privilege('pgcapacity', home, 'CREATE') THEN
            RAISE WARNING 'every role may create tables in schema %, pgcapacity too', home
                USING HINT = format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC (the default from PostgreSQL 15 on), then grant CREATE to the roles that need it', home);
        END IF;
    END LOOP;
    -- The admin-ops queries name their tables without a schema: the first
    -- schema granted (the admin-ops tables' when present).
    EXECUTE format('ALTER ROLE pgcapacity IN DATABASE %I SET search_path = %I', current_database(), schemas[1]);

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
