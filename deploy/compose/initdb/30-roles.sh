#!/usr/bin/env bash
# The compose stack's pgcapacity roles: the monitoring role that serve uses
# and the role migrate uses, from deploy/sql (mounted at PGCAPACITY_SQL_DIR),
# with the passwords from the environment. The postgres image runs this once,
# when it initializes an empty data directory.
set -euo pipefail
sql_dir=${PGCAPACITY_SQL_DIR:-/pgcapacity-sql}
psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-sigid}")

"${psql[@]}" -f "$sql_dir/monitoring-role.sql"
"${psql[@]}" -f "$sql_dir/migrate-role.sql"
# psql quotes :'variables' as literals, so the passwords are never SQL.
"${psql[@]}" -v monitoring="${PGCAPACITY_PASSWORD:?set PGCAPACITY_PASSWORD}" -v migrate="${PGCAPACITY_MIGRATE_PASSWORD:?set PGCAPACITY_MIGRATE_PASSWORD}" <<'SQL'
ALTER ROLE pgcapacity PASSWORD :'monitoring';
ALTER ROLE pgcapacity_migrate PASSWORD :'migrate';
SQL
