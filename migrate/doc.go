// Package migrate changes the hash partition count of a PostgreSQL table
// online: it creates a new partitioned table beside the original, captures
// changes on the original before copying, copies in short checkpointed
// batches, replays the captured changes, validates both sides, swaps the
// names in one short locked transaction and keeps the original current
// through reverse capture until the rollback period has passed.
//
// All state lives in the pgcapacity schema of the database itself, so every
// step can be resumed after a crash and rerun safely; an advisory lock per
// table keeps two processes from working on the same migration.
package migrate
