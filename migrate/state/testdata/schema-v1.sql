-- The pgcapacity state schema as every release before the schema version row
-- created it (migrate/state schemaDDL at main 8120820, unchanged since 9538131).
-- Kept verbatim: the upgrade test starts from it.
CREATE SCHEMA IF NOT EXISTS pgcapacity;
CREATE TABLE IF NOT EXISTS pgcapacity.migration (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		schema_name text NOT NULL,
		table_name text NOT NULL,
		original_oid oid NOT NULL,
		new_oid oid,
		new_name text NOT NULL,
		retained_name text NOT NULL,
		from_partitions int NOT NULL,
		to_partitions int NOT NULL,
		key_columns text[] NOT NULL,
		phase text NOT NULL,
		reason text NOT NULL,
		requester text NOT NULL,
		approver text NOT NULL,
		force_decrease_reason text,
		created_at timestamptz NOT NULL DEFAULT now(),
		copy_started_at timestamptz,
		copy_finished_at timestamptz,
		validated_at timestamptz,
		swapped_at timestamptz,
		rolled_back_at timestamptz,
		rollback_deadline timestamptz,
		finished_at timestamptz,
		estimated_rows bigint NOT NULL DEFAULT 0,
		swaps int NOT NULL DEFAULT 0,
		last_lock_hold_seconds double precision,
		post_swap_pending boolean NOT NULL DEFAULT false,
		last_error text
	);
CREATE UNIQUE INDEX IF NOT EXISTS migration_one_active_per_table ON pgcapacity.migration (schema_name, table_name)
		WHERE phase NOT IN ('dropped', 'aborted');
CREATE TABLE IF NOT EXISTS pgcapacity.copy_progress (
		migration_id bigint NOT NULL REFERENCES pgcapacity.migration ON DELETE CASCADE,
		source_oid oid NOT NULL,
		source_name text NOT NULL,
		total_blocks bigint,
		next_block bigint NOT NULL DEFAULT 0,
		copied_rows bigint NOT NULL DEFAULT 0,
		done boolean NOT NULL DEFAULT false,
		PRIMARY KEY (migration_id, source_oid)
	);
CREATE TABLE IF NOT EXISTS pgcapacity.object_name (
		migration_id bigint NOT NULL REFERENCES pgcapacity.migration ON DELETE CASCADE,
		side text NOT NULL CHECK (side IN ('original', 'new')),
		relid oid NOT NULL,
		relkind text NOT NULL,
		live_name text NOT NULL,
		shadow_name text NOT NULL,
		PRIMARY KEY (migration_id, relid)
	);
CREATE TABLE IF NOT EXISTS pgcapacity.migration_event (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		migration_id bigint NOT NULL REFERENCES pgcapacity.migration ON DELETE CASCADE,
		at timestamptz NOT NULL DEFAULT now(),
		actor text NOT NULL DEFAULT current_user,
		event text NOT NULL,
		detail text NOT NULL DEFAULT ''
	);
