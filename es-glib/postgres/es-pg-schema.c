/* es-pg-schema.c: the PostgreSQL backend's tables.
 *
 * The schema's DDL and its migrations (the list whose length is the
 * version this code writes); the text of the fixed statements every
 * connection prepares (SqlId in es-pg-private.h), made for the storage's
 * schema; and opening a schema: checking that it is es-glib's and not
 * newer, then creating or upgrading it under an advisory lock, so that
 * several processes may open the same one at once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "es-pg-private.h"

/* ---------------------------------------------------------------------- *
 * Schema                                                                  *
 * ---------------------------------------------------------------------- */

/* In every SQL text below, {S} stands for the schema, quoted. */

/* Version 1.
 *
 * es_glib_version: one row, the schema version; a schema with tables but
 * without it is not es-glib's.
 *
 * events: sequence_id is the global position, assigned from the one row
 * of global_position inside the append's transaction (see
 * es-pg-writer.c): ids run 1, 2, 3... without holes, and rows
 * commit in id order. UNIQUE (stream_id, version) serves stream reads and
 * the version lookup of each append, and is the last line of defence
 * against two events taking one version. Idempotency keys are unique per
 * stream, through a partial index that costs nothing for events without a
 * key. (event_type, sequence_id) serves @all reads filtered on the type.
 * The metadata is kept as text, exactly as written; filters read it as
 * jsonb.
 *
 * snapshots: one row per (stream, projection); @all's under '@all'.
 *
 * metadata_jsonb(): the metadata as jsonb, or NULL when PostgreSQL cannot
 * represent it (strict JSON it refuses: a \u0000 escape, a lone surrogate,
 * a number beyond numeric's range). A plain cast would fail the whole
 * read on such a row; SQLite's json_valid() guard makes it simply not
 * match, and so does this. */
static const char schema_v1[] =
  "CREATE TABLE {S}.es_glib_version ("
  "  version integer NOT NULL"
  ");"
  "INSERT INTO {S}.es_glib_version (version) VALUES (0);"
  "CREATE TABLE {S}.events ("
  "  sequence_id     bigint      PRIMARY KEY,"
  "  stream_id       text        NOT NULL,"
  "  version         bigint      NOT NULL,"
  "  idempotency_key text,"
  "  event_type      text        NOT NULL,"
  "  recorded_at     timestamptz NOT NULL,"
  "  data            bytea       NOT NULL,"
  "  metadata        text,"
  "  UNIQUE (stream_id, version)"
  ");"
  "CREATE UNIQUE INDEX events_idempotency_key ON {S}.events (stream_id, idempotency_key)"
  "  WHERE idempotency_key IS NOT NULL;"
  "CREATE INDEX events_event_type ON {S}.events (event_type, sequence_id);"
  "CREATE TABLE {S}.snapshots ("
  "  stream_id       text        NOT NULL,"
  "  projection_name text        NOT NULL,"
  "  version         bigint      NOT NULL,"
  "  state           bytea       NOT NULL,"
  "  recorded_at     timestamptz NOT NULL,"
  "  PRIMARY KEY (stream_id, projection_name)"
  ");"
  "CREATE TABLE {S}.global_position ("
  "  id               boolean PRIMARY KEY DEFAULT TRUE CHECK (id),"
  "  last_sequence_id bigint  NOT NULL"
  ");"
  "INSERT INTO {S}.global_position (last_sequence_id) VALUES (0);"
  "CREATE FUNCTION {S}.metadata_jsonb (metadata text) RETURNS jsonb"
  "  LANGUAGE plpgsql IMMUTABLE STRICT AS $$"
  "BEGIN"
  "  RETURN metadata::jsonb;"
  "EXCEPTION WHEN data_exception OR program_limit_exceeded THEN"
  "  RETURN NULL;"
  "END $$;";

/* Version 2: the stream life cycle (issue 16).
 *
 * events.flags: 1 = erased (data emptied, metadata NULL). Adding a column
 * with a constant default rewrites nothing (PostgreSQL 11 and later).
 *
 * streams: one row per stream ever written, deleted or given a policy,
 * updated by every append in its transaction (APPEND_SQL): the version
 * (never decreases), the number of events stored, the first stored
 * version and the timestamps of the oldest and newest stored events, the
 * state (0 active, 1 deleted, 2 tombstoned: EsStreamState) and the
 * stream's retention policy. Appends read their version and the
 * tombstone here; listing and stream information read only this table.
 * Its ids sort byte-wise (COLLATE "C"), as SQLite's do, so that listing
 * pages and prefixes are ranges of the primary key.
 *
 * settings: one row, the database-wide retention policy.
 *
 * tombstones: the marker of each hard-deleted stream, at a position taken
 * from global_position like the events' (readers of @all asking for
 * markers merge the two tables in sequence-id order). Soft deletes take a
 * position too, without a row: a documented gap.
 *
 * events_recorded_at: time ranges of @all read only their range.
 *
 * The functions below run the life-cycle operations inside one statement
 * (so inside the caller's transaction), after the caller took the
 * stream's advisory lock (LOCK_SQL), as appends do. Each checks
 * before it writes: a refusal (status > 0) has changed nothing. */
static const char schema_v2[] =
  "ALTER TABLE {S}.events ADD COLUMN flags integer NOT NULL DEFAULT 0;"
  "CREATE TABLE {S}.streams ("
  "  stream_id     text COLLATE \"C\" PRIMARY KEY,"
  "  version       bigint      NOT NULL DEFAULT 0,"
  "  event_count   bigint      NOT NULL DEFAULT 0,"
  "  first_version bigint      NOT NULL DEFAULT 0,"
  "  first_at      timestamptz,"
  "  last_at       timestamptz,"
  "  state         smallint    NOT NULL DEFAULT 0,"
  "  max_age       bigint      NOT NULL DEFAULT 0,"
  "  max_count     bigint      NOT NULL DEFAULT 0"
  ");"
  "INSERT INTO {S}.streams (stream_id, version, event_count, first_version, first_at, last_at)"
  "  SELECT stream_id, max(version), count(*), min(version), min(recorded_at), max(recorded_at)"
  "  FROM {S}.events GROUP BY stream_id;"
  "CREATE INDEX streams_age_policy ON {S}.streams (stream_id) WHERE max_age > 0;"
  "CREATE TABLE {S}.settings ("
  "  id        boolean PRIMARY KEY DEFAULT TRUE CHECK (id),"
  "  max_age   bigint  NOT NULL DEFAULT 0,"
  "  max_count bigint  NOT NULL DEFAULT 0"
  ");"
  "INSERT INTO {S}.settings DEFAULT VALUES;"
  "CREATE TABLE {S}.tombstones ("
  "  sequence_id bigint      PRIMARY KEY,"
  "  stream_id   text        NOT NULL UNIQUE,"
  "  version     bigint      NOT NULL,"
  "  recorded_at timestamptz NOT NULL"
  ");"
  "CREATE INDEX events_recorded_at ON {S}.events (recorded_at);"
  /* The stricter of two limits, 0 meaning none. */
  "CREATE FUNCTION {S}.stricter (a bigint, b bigint) RETURNS bigint"
  "  LANGUAGE sql IMMUTABLE AS"
  "  'SELECT CASE WHEN a = 0 THEN b WHEN b = 0 THEN a ELSE least (a, b) END';"
  /* After events of a stream went: its first version and timestamps
   * again, its count less @removed, and the snapshots the removal made
   * stale (a snapshot stays iff every event after its version is still
   * stored: the stored versions run from first_version on). */
  "CREATE FUNCTION {S}.removed_events (p_stream text, p_removed bigint) RETURNS void"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  fv bigint; fat timestamptz; v bigint;"
  "BEGIN"
  "  SELECT e.version, e.recorded_at INTO fv, fat FROM {S}.events e"
  "    WHERE e.stream_id = p_stream ORDER BY e.version LIMIT 1;"
  "  UPDATE {S}.streams s SET event_count = s.event_count - p_removed,"
  "      first_version = coalesce (fv, 0), first_at = fat,"
  "      last_at = CASE WHEN fv IS NULL THEN NULL ELSE s.last_at END"
  "    WHERE s.stream_id = p_stream RETURNING s.version INTO v;"
  "  DELETE FROM {S}.snapshots sn WHERE sn.stream_id = p_stream"
  "    AND sn.version < coalesce (fv, v + 1) - 1;"
  "END $$;"
  /* Enforces the effective policy of one stream at @p_now, removing at
   * most @p_limit events (NULL: no limit). Count: keep the newest
   * max_count. Age: remove the events before the first one written at or
   * after p_now - max_age. Returns how many went. */
  "CREATE FUNCTION {S}.apply_retention (p_stream text, p_now timestamptz, p_limit bigint)"
  "  RETURNS bigint LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  s {S}.streams%ROWTYPE; g {S}.settings%ROWTYPE;"
  "  age bigint; cnt bigint; cut bigint := 0; acut bigint; n bigint := 0;"
  "BEGIN"
  "  SELECT * INTO s FROM {S}.streams WHERE stream_id = p_stream;"
  "  IF NOT FOUND OR s.event_count = 0 OR s.state = 2 THEN RETURN 0; END IF;"
  "  SELECT * INTO g FROM {S}.settings;"
  "  age := {S}.stricter (s.max_age, g.max_age);"
  "  cnt := {S}.stricter (s.max_count, g.max_count);"
  "  IF cnt > 0 AND s.event_count > cnt THEN"
  "    IF s.event_count = s.version - s.first_version + 1 THEN"
  "      cut := s.version - cnt + 1;"
  "    ELSE"
  "      SELECT e.version INTO cut FROM {S}.events e WHERE e.stream_id = p_stream"
  "        ORDER BY e.version DESC OFFSET cnt - 1 LIMIT 1;"
  "    END IF;"
  "  END IF;"
  "  IF age > 0 AND s.first_at < p_now - age * INTERVAL '1 microsecond' THEN"
  "    SELECT coalesce (min (e.version), s.version + 1) INTO acut FROM {S}.events e"
  "      WHERE e.stream_id = p_stream"
  "        AND e.recorded_at >= p_now - age * INTERVAL '1 microsecond';"
  "    cut := greatest (cut, acut);"
  "  END IF;"
  "  IF cut <= s.first_version THEN RETURN 0; END IF;"
  "  DELETE FROM {S}.events WHERE sequence_id IN ("
  "    SELECT e.sequence_id FROM {S}.events e WHERE e.stream_id = p_stream AND e.version < cut"
  "    ORDER BY e.version LIMIT p_limit);"
  "  GET DIAGNOSTICS n = ROW_COUNT;"
  "  IF n > 0 THEN PERFORM {S}.removed_events (p_stream, n); END IF;"
  "  RETURN n;"
  "END $$;"
  /* Deletes a stream: status 0 done (or a tombstone again: nothing to
   * do), 1 wrong expected version, 2 tombstoned (a soft delete of it);
   * found_version: the version checked. The position comes last, so that the
   * counter row is locked only from there to the COMMIT. */
  "CREATE FUNCTION {S}.delete_stream (p_stream text, p_expected bigint, p_tombstone boolean,"
  "                                   p_channel text, OUT status integer, OUT found_version bigint)"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  st smallint; pos bigint; v_now timestamptz := clock_timestamp ();"
  "BEGIN"
  "  SELECT s.version, s.state INTO found_version, st FROM {S}.streams s"
  "    WHERE s.stream_id = p_stream"
  "    FOR UPDATE;"
  "  found_version := coalesce (found_version, 0); st := coalesce (st, 0);"
  "  IF st = 2 THEN"
  "    status := CASE WHEN p_tombstone THEN 0 ELSE 2 END;"
  "    RETURN;"
  "  END IF;"
  "  IF p_expected >= 0 AND p_expected <> found_version THEN status := 1; RETURN; END IF;"
  "  DELETE FROM {S}.events WHERE stream_id = p_stream;"
  "  DELETE FROM {S}.snapshots WHERE stream_id = p_stream;"
  "  INSERT INTO {S}.streams AS s (stream_id, version, state)"
  "    VALUES (p_stream, found_version, CASE WHEN p_tombstone THEN 2 ELSE 1 END)"
  "    ON CONFLICT (stream_id) DO UPDATE SET state = excluded.state, event_count = 0,"
  "      first_version = 0, first_at = NULL, last_at = NULL;"
  "  UPDATE {S}.global_position SET last_sequence_id = last_sequence_id + 1"
  "    RETURNING last_sequence_id INTO pos;"
  "  IF p_tombstone THEN"
  "    INSERT INTO {S}.tombstones (sequence_id, stream_id, version, recorded_at)"
  "      VALUES (pos, p_stream, found_version, v_now);"
  "  END IF;"
  "  PERFORM pg_catalog.pg_notify (p_channel, pos::text);"
  "  status := 0;"
  "END $$;"
  /* Truncates: status 0 done, 2 tombstoned, 3 @p_before beyond the
   * version (found_version). */
  "CREATE FUNCTION {S}.truncate_stream (p_stream text, p_before bigint,"
  "                                     OUT status integer, OUT found_version bigint)"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  st smallint; n bigint;"
  "BEGIN"
  "  SELECT s.version, s.state INTO found_version, st FROM {S}.streams s"
  "    WHERE s.stream_id = p_stream"
  "    FOR UPDATE;"
  "  found_version := coalesce (found_version, 0); st := coalesce (st, 0);"
  "  IF st = 2 THEN status := 2; RETURN; END IF;"
  "  IF p_before > found_version THEN status := 3; RETURN; END IF;"
  "  DELETE FROM {S}.events WHERE stream_id = p_stream AND version < p_before;"
  "  GET DIAGNOSTICS n = ROW_COUNT;"
  "  IF n > 0 THEN PERFORM {S}.removed_events (p_stream, n); END IF;"
  "  status := 0;"
  "END $$;"
  /* Stores a stream's policy and enforces it: status 0 done, 2
   * tombstoned; found_version: the events removed. */
  "CREATE FUNCTION {S}.set_retention (p_stream text, p_age bigint, p_count bigint,"
  "                                   OUT status integer, OUT found_version bigint)"
  "  LANGUAGE plpgsql AS $$"
  "BEGIN"
  "  IF EXISTS (SELECT FROM {S}.streams s WHERE s.stream_id = p_stream AND s.state = 2) THEN"
  "    status := 2; found_version := 0; RETURN;"
  "  END IF;"
  "  INSERT INTO {S}.streams AS s (stream_id, max_age, max_count)"
  "    VALUES (p_stream, p_age, p_count)"
  "    ON CONFLICT (stream_id) DO UPDATE SET max_age = excluded.max_age,"
  "      max_count = excluded.max_count;"
  "  found_version := {S}.apply_retention (p_stream, clock_timestamp (), NULL);"
  "  status := 0;"
  "END $$;"
  /* One transaction of a sweep: the streams from @p_from on whose
   * effective policy may remove something at @p_now, until @p_limit
   * events went. A stream whose advisory lock another transaction holds
   * (an append, which enforces the policy itself) is skipped rather than
   * waited for, so a sweep never waits on a writer nor deadlocks with
   * one. Returns the events removed and the stream to start the next
   * transaction from (NULL: done). */
  "CREATE FUNCTION {S}.sweep (p_now timestamptz, p_limit bigint, p_from text, p_lock_prefix text,"
  "                           OUT removed bigint, OUT next_from text)"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  r record; n bigint;"
  "BEGIN"
  "  removed := 0; next_from := NULL;"
  "  FOR r IN SELECT s.stream_id FROM {S}.streams s, {S}.settings g"
  "      WHERE s.stream_id >= coalesce (p_from, '') AND s.event_count > 0 AND s.state <> 2"
  "        AND (({S}.stricter (s.max_count, g.max_count) > 0"
  "              AND s.event_count > {S}.stricter (s.max_count, g.max_count))"
  "          OR ({S}.stricter (s.max_age, g.max_age) > 0"
  "              AND s.first_at < p_now - {S}.stricter (s.max_age, g.max_age)"
  "                                      * INTERVAL '1 microsecond'))"
  "      ORDER BY s.stream_id LOOP"
  "    IF pg_catalog.pg_try_advisory_xact_lock ("
  "         pg_catalog.hashtextextended (p_lock_prefix || r.stream_id, 0)) THEN"
  "      n := {S}.apply_retention (r.stream_id, p_now, p_limit - removed);"
  "      removed := removed + n;"
  /* Full: this stream may have more to remove; the next transaction
   * starts with it. */
  "      IF removed >= p_limit THEN next_from := r.stream_id; RETURN; END IF;"
  "    END IF;"
  "  END LOOP;"
  "END $$;";

/* Version 3: durable subscriptions (issue 17).
 *
 * subscriptions: one row per stored subscription: the stream it follows
 * ('@all' for every stream: no stream id starts with '@'), its checkpoint
 * (the last version, or for '@all' sequence id, consumed), the consumer's
 * state (NULL: none) and when it was last saved. Names sort byte-wise
 * (COLLATE "C"), as SQLite's do.
 *
 * Holding a subscription is a session advisory lock on the two-int key
 * (1702061932, hashtext (p_lock_key)), taken on a connection of its own
 * (es-pg-subscription.c); the functions below take the same key as a
 * transaction lock, without waiting, so that they never run while
 * another session holds the subscription (their own holder's session
 * may: advisory locks are re-entrant within a session). Each checks
 * before it writes: a refusal (status > 0) has changed nothing.
 *
 * save_checkpoint: status 0 saved (created the first time), 1 another
 * stream is stored (found_stream), 2 the checkpoint would move back
 * (found_position), 3 held by another session. p_set_state false keeps
 * the stored state. */
static const char schema_v3[] =
  "CREATE TABLE {S}.subscriptions ("
  "  name      text COLLATE \"C\" PRIMARY KEY,"
  "  stream_id text        NOT NULL,"
  "  position  bigint      NOT NULL CHECK (position >= 0),"
  "  state     bytea,"
  "  updated   timestamptz NOT NULL"
  ");"
  /* The head of a subscription's stream: the stream's version, or for
   * '@all' the last position used. */
  "CREATE FUNCTION {S}.subscription_head (p_stream text) RETURNS bigint"
  "  LANGUAGE sql STABLE AS $$"
  "SELECT CASE WHEN p_stream = '@all'"
  "  THEN (SELECT g.last_sequence_id FROM {S}.global_position g)"
  "  ELSE coalesce ((SELECT t.version FROM {S}.streams t WHERE t.stream_id = p_stream), 0)"
  "END $$;"
  "CREATE FUNCTION {S}.save_checkpoint (p_name text, p_lock_key text, p_stream text,"
  "                                     p_position bigint, p_state bytea, p_set_state boolean,"
  "                                     OUT status integer, OUT found_stream text,"
  "                                     OUT found_position bigint)"
  "  LANGUAGE plpgsql AS $$"
  "BEGIN"
  "  status := 0;"
  "  IF NOT pg_catalog.pg_try_advisory_xact_lock (1702061932, pg_catalog.hashtext (p_lock_key))"
  "  THEN status := 3; RETURN; END IF;"
  "  SELECT s.stream_id, s.position INTO found_stream, found_position"
  "    FROM {S}.subscriptions s WHERE s.name = p_name FOR UPDATE;"
  "  IF NOT FOUND THEN"
  "    INSERT INTO {S}.subscriptions (name, stream_id, position, state, updated)"
  "      VALUES (p_name, p_stream, p_position, CASE WHEN p_set_state THEN p_state END,"
  "              clock_timestamp ());"
  "    RETURN;"
  "  END IF;"
  "  IF found_stream <> p_stream THEN status := 1; RETURN; END IF;"
  "  IF p_position < found_position THEN status := 2; RETURN; END IF;"
  "  UPDATE {S}.subscriptions s SET position = p_position,"
  "      state = CASE WHEN p_set_state THEN p_state ELSE s.state END,"
  "      updated = clock_timestamp ()"
  "    WHERE s.name = p_name;"
  "END $$;"
  /* Moves a checkpoint (p_delete false) and drops the state, or forgets
   * the subscription (p_delete true): status 0 done, 3 held by another
   * session, 4 no such subscription, 5 p_position beyond the head
   * (found_head). */
  "CREATE FUNCTION {S}.change_subscription (p_name text, p_lock_key text, p_position bigint,"
  "                                         p_delete boolean, OUT status integer,"
  "                                         OUT found_head bigint)"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  st text;"
  "BEGIN"
  "  status := 0; found_head := 0;"
  "  IF NOT pg_catalog.pg_try_advisory_xact_lock (1702061932, pg_catalog.hashtext (p_lock_key))"
  "  THEN status := 3; RETURN; END IF;"
  "  SELECT s.stream_id INTO st FROM {S}.subscriptions s WHERE s.name = p_name FOR UPDATE;"
  "  IF NOT FOUND THEN status := 4; RETURN; END IF;"
  "  IF p_delete THEN"
  "    DELETE FROM {S}.subscriptions WHERE name = p_name;"
  "    RETURN;"
  "  END IF;"
  "  found_head := {S}.subscription_head (st);"
  "  IF p_position > found_head THEN status := 5; RETURN; END IF;"
  "  UPDATE {S}.subscriptions SET position = p_position, state = NULL,"
  "      updated = clock_timestamp () WHERE name = p_name;"
  "END $$;";

/* Version 4: writers of different streams commit in parallel (issue 22;
 * doc/postgres-scaling.md).
 *
 * Until version 3 every write that took a position updated the one row of
 * global_position and held it locked until COMMIT: commits of the whole
 * database happened one after the other. From version 4 on, positions
 * come from the sequence `positions`, taken by reserve_positions() in one
 * short critical section that is not held to the commit, and readers of
 * @all see only the rows whose writing transaction is below the horizon:
 *
 * reserve_positions (n): under a session advisory lock (classid
 * 1702061933, objid hashtext of the schema), taken and released inside
 * the call, assigns the calling transaction its id (pg_current_xact_id)
 * and takes n consecutive numbers from the sequence; returns the first.
 * It refuses (SQLSTATE 55000) a transaction that already has an id: the
 * reservation must be its first write. Among es-glib's writers, id order
 * is therefore position order.
 *
 * xact: the id of the transaction that wrote the row (events,
 * tombstones), by default; NULL for rows written before version 4, all of
 * them final. A row is visible to @all readers (visible_below()) when its
 * xact is below the xmin of the reader's snapshot: every transaction below
 * xmin has ended, and every es-glib writer still running has a larger id,
 * so larger positions than every row shown. Each read of @all is a prefix
 * of the final order.
 *
 * global_position is no longer written: it keeps the last position used
 * before version 4, the floor of the head. The sequence starts after it.
 *
 * streams.deleted_position, deleted_xact: the position a delete took, so
 * that the head of @all (all_head()) counts a soft delete (which leaves
 * no row) once it is below the horizon.
 *
 * all_head (): the last position below the horizon: the largest of the
 * floor, the visible events and tombstones and the visible deletes.
 *
 * delete_stream(): checks first, then reserves its position, then writes
 * (it reads its stream's row without FOR UPDATE: the caller holds the
 * stream's advisory lock, and FOR UPDATE would give the transaction an id
 * before the reservation); it no longer notifies (p_channel is unused):
 * it leaves its position in the session setting es_glib.notify, which
 * the caller notifies after the COMMIT (NOTIFY_SQL). */
static const char schema_v4[] =
  "CREATE SEQUENCE {S}.positions AS bigint MINVALUE 1 NO CYCLE;"
  "SELECT pg_catalog.setval ('{S}.positions', greatest (g.last_sequence_id, 1),"
  "                          g.last_sequence_id > 0) FROM {S}.global_position g;"
  "ALTER TABLE {S}.events ADD COLUMN xact xid8;"
  "ALTER TABLE {S}.events ALTER COLUMN xact SET DEFAULT pg_catalog.pg_current_xact_id ();"
  "ALTER TABLE {S}.tombstones ADD COLUMN xact xid8;"
  "ALTER TABLE {S}.tombstones ALTER COLUMN xact SET DEFAULT pg_catalog.pg_current_xact_id ();"
  "ALTER TABLE {S}.streams ADD COLUMN deleted_position bigint, ADD COLUMN deleted_xact xid8;"
  "CREATE INDEX streams_deleted_position ON {S}.streams (deleted_position)"
  "  WHERE deleted_position IS NOT NULL;"
  "CREATE FUNCTION {S}.reserve_positions (n integer) RETURNS bigint"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  k integer := pg_catalog.hashtext ('{S}'); first bigint;"
  "BEGIN"
  "  IF pg_catalog.pg_current_xact_id_if_assigned () IS NOT NULL THEN"
  "    RAISE EXCEPTION 'es-glib positions must be reserved before the first write of a transaction'"
  "      USING ERRCODE = 'object_not_in_prerequisite_state';"
  "  END IF;"
  "  BEGIN"
  "    PERFORM pg_catalog.pg_advisory_lock (1702061933, k);"
  "    PERFORM pg_catalog.pg_current_xact_id ();"
  "    first := pg_catalog.nextval ('{S}.positions');"
  "    IF n > 1 THEN PERFORM pg_catalog.setval ('{S}.positions', first + n - 1); END IF;"
  "  EXCEPTION WHEN query_canceled OR others THEN"
  /* A cancel or a failure between the lock and its release must not leave
   * the session holding it: every writer would wait for it. */
  "    IF EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory'"
  "               AND l.pid = pg_catalog.pg_backend_pid () AND l.classid = 1702061933"
  "               AND l.objid = k::oid AND l.objsubid = 2 AND l.granted) THEN"
  "      PERFORM pg_catalog.pg_advisory_unlock (1702061933, k);"
  "    END IF;"
  "    RAISE;"
  "  END;"
  "  PERFORM pg_catalog.pg_advisory_unlock (1702061933, k);"
  "  RETURN first;"
  "END $$;"
  "CREATE FUNCTION {S}.horizon () RETURNS xid8"
  "  LANGUAGE sql STABLE AS"
  "  'SELECT pg_catalog.pg_snapshot_xmin (pg_catalog.pg_current_snapshot ())';"
  "CREATE FUNCTION {S}.all_head () RETURNS bigint"
  "  LANGUAGE sql STABLE AS $$"
  "SELECT greatest ((SELECT g.last_sequence_id FROM {S}.global_position g),"
  "  (SELECT max (e.sequence_id) FROM {S}.events e"
  "     WHERE e.xact IS NULL OR e.xact < (SELECT {S}.horizon ())),"
  "  (SELECT max (t.sequence_id) FROM {S}.tombstones t"
  "     WHERE t.xact IS NULL OR t.xact < (SELECT {S}.horizon ())),"
  "  (SELECT max (s.deleted_position) FROM {S}.streams s"
  "     WHERE s.deleted_position IS NOT NULL AND s.deleted_xact < (SELECT {S}.horizon ())), 0)"
  "$$;"
  "CREATE OR REPLACE FUNCTION {S}.subscription_head (p_stream text) RETURNS bigint"
  "  LANGUAGE sql STABLE AS $$"
  "SELECT CASE WHEN p_stream = '@all'"
  "  THEN {S}.all_head ()"
  "  ELSE coalesce ((SELECT t.version FROM {S}.streams t WHERE t.stream_id = p_stream), 0)"
  "END $$;"
  "CREATE OR REPLACE FUNCTION {S}.delete_stream (p_stream text, p_expected bigint,"
  "                                   p_tombstone boolean, p_channel text,"
  "                                   OUT status integer, OUT found_version bigint)"
  "  LANGUAGE plpgsql AS $$"
  "DECLARE"
  "  st smallint; pos bigint; v_now timestamptz := clock_timestamp ();"
  "BEGIN"
  "  PERFORM pg_catalog.set_config ('es_glib.notify', '', FALSE);"
  "  SELECT s.version, s.state INTO found_version, st FROM {S}.streams s"
  "    WHERE s.stream_id = p_stream;"
  "  found_version := coalesce (found_version, 0); st := coalesce (st, 0);"
  "  IF st = 2 THEN"
  "    status := CASE WHEN p_tombstone THEN 0 ELSE 2 END;"
  "    RETURN;"
  "  END IF;"
  "  IF p_expected >= 0 AND p_expected <> found_version THEN status := 1; RETURN; END IF;"
  "  pos := {S}.reserve_positions (1);"
  "  DELETE FROM {S}.events WHERE stream_id = p_stream;"
  "  DELETE FROM {S}.snapshots WHERE stream_id = p_stream;"
  "  INSERT INTO {S}.streams AS s (stream_id, version, state, deleted_position, deleted_xact)"
  "    VALUES (p_stream, found_version, CASE WHEN p_tombstone THEN 2 ELSE 1 END, pos,"
  "            pg_catalog.pg_current_xact_id ())"
  "    ON CONFLICT (stream_id) DO UPDATE SET state = excluded.state, event_count = 0,"
  "      first_version = 0, first_at = NULL, last_at = NULL,"
  "      deleted_position = excluded.deleted_position, deleted_xact = excluded.deleted_xact;"
  "  IF p_tombstone THEN"
  "    INSERT INTO {S}.tombstones (sequence_id, stream_id, version, recorded_at)"
  "      VALUES (pos, p_stream, found_version, v_now);"
  "  END IF;"
  /* Notified after the COMMIT (NOTIFY_SQL; see APPEND_SQL). */
  "  PERFORM pg_catalog.set_config ('es_glib.notify', pos::text, FALSE);"
  "  status := 0;"
  "END $$;";

/* migrations[N] upgrades schema version N to N + 1, inside the caller's
 * transaction; version 0 is an empty schema. A schema change appends its
 * step here and nothing else: the length of this table is the version
 * this code writes. */
static const char * const migrations[] = {
  schema_v1,
  schema_v2,
  schema_v3,
  schema_v4,
};

#define SCHEMA_VERSION ((gint64) G_N_ELEMENTS (migrations))

/* What the server says about the schema, read without writing anything. */
typedef struct
{
  gboolean exists;
  gint64   n_objects;      /* relations and functions in it */
  gboolean has_version;    /* it has our version table */
  gint64   version;        /* the version recorded there; 0 without */
} SchemaState;

#define INSPECT_SQL \
  "WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1::text)" \
  " SELECT EXISTS (SELECT FROM ns)," \
  "  (SELECT count(*) FROM pg_catalog.pg_class c, ns WHERE c.relnamespace = ns.oid)" \
  "  + (SELECT count(*) FROM pg_catalog.pg_proc p, ns WHERE p.pronamespace = ns.oid)," \
  "  EXISTS (SELECT FROM pg_catalog.pg_class c, ns WHERE c.relnamespace = ns.oid" \
  "          AND c.relname = 'es_glib_version' AND c.relkind = 'r')"

/* Serialises the creation and upgrade of one schema among every process;
 * the key is the hash of "es-glib schema <name>". */
#define LOCK_SQL "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1::text, 0))"

/* Which of the idempotency keys $2 stream $1 holds (see group_operation()
 * in es-pg-writer.c). */
#define EXISTING_KEYS_SQL \
  "SELECT idempotency_key FROM {S}.events" \
  " WHERE stream_id = $1::text AND idempotency_key = ANY ($2::text[])"

/* The same locks for a group of appends (see writer_run_group() in
 * es-pg-writer.c): one per distinct key of the text[] $1, taken in
 * ascending lock-key order. Every group of every process takes its locks
 * in this one order, so two groups can never each hold a lock the other
 * waits for. */
#define LOCK_MANY_SQL \
  "SELECT count(pg_catalog.pg_advisory_xact_lock(s.k)) FROM (" \
  "  SELECT DISTINCT pg_catalog.hashtextextended(u.t, 0) AS k" \
  "  FROM unnest($1::text[]) AS u (t) ORDER BY k" \
  ") AS s"

/* Reads the stream's row (version, state) in a snapshot taken after the
 * stream's lock; a tombstoned stream accepts nothing (state 2, checked
 * before the idempotency keys). Inserts the events, takes their positions
 * and brings the stream's row up to date, in one statement.
 *
 * The positions: with $7 NULL, reserve_positions() takes exactly as many
 * as there are events left, before the statement writes anything (the
 * modifying CTEs run after the main query has read pos), so it is the
 * transaction's first write. A transaction of several appends (a group,
 * es-pg-writer.c) reserves one block for them all first (RESERVE_SQL) and
 * gives each its offset in it as $7.
 *
 * The notification: not sent here but by NOTIFY_SQL after the COMMIT,
 * from the session setting es_glib.notify this statement leaves (the last
 * sequence id, or '' when nothing was written). A transaction that sends
 * a NOTIFY holds the server's one notification-queue lock from its
 * pre-commit to the end of its commit, WAL flush included: notifying
 * here would make every append of the cluster commit one at a time
 * again. After the COMMIT, the NOTIFY is a transaction of its own that
 * writes nothing: NOTIFY gives it a transaction id, but a transaction
 * that wrote no WAL commits without waiting for a flush, so it holds the
 * lock for microseconds. It writes no row, so the horizon it may hold for
 * that moment hides nothing of its own. */
#define APPEND_SQL \
  "WITH input AS (" \
  "  SELECT * FROM unnest($3::text[], $4::text[], $5::bytea[], $6::text[])" \
  "    WITH ORDINALITY AS t (idempotency_key, event_type, data, metadata, ord)" \
  "), st AS (" \
  "  SELECT coalesce(max(s.version), 0) AS version, coalesce(max(s.state), 0) AS state" \
  "  FROM {S}.streams s WHERE s.stream_id = $1::text" \
  "), head AS (" \
  "  SELECT st.version, st.state, clock_timestamp() AS now," \
  "         (st.state <> 2 AND ($2::int8 < 0 OR $2::int8 = st.version OR NOT EXISTS (" \
  "           SELECT FROM input i WHERE i.idempotency_key IS NULL OR NOT EXISTS (" \
  "             SELECT FROM {S}.events e" \
  "             WHERE e.stream_id = $1::text AND e.idempotency_key = i.idempotency_key)" \
  "         ))) AS accepted" \
  "  FROM st" \
  "), fresh AS (" \
  "  SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n FROM input i, head h" \
  "  WHERE h.accepted AND (i.idempotency_key IS NULL OR NOT EXISTS (" \
  "    SELECT FROM {S}.events e" \
  "    WHERE e.stream_id = $1::text AND e.idempotency_key = i.idempotency_key))" \
  "), counted AS (" \
  "  SELECT count(*) AS n FROM fresh" \
  "), pos AS (" \
  "  SELECT coalesce(nullif(pg_catalog.current_setting('es_glib.positions', TRUE), '')::int8" \
  "                  + $7::int8, {S}.reserve_positions(c.n::int4)) - 1 + c.n" \
  "         AS last_sequence_id" \
  "  FROM counted c WHERE c.n > 0" \
  "), inserted AS (" \
  "  INSERT INTO {S}.events (sequence_id, stream_id, version, idempotency_key, event_type," \
  "                          recorded_at, data, metadata)" \
  "  SELECT p.last_sequence_id - c.n + f.n, $1::text, h.version + f.n, f.idempotency_key," \
  "         f.event_type, h.now, f.data, f.metadata" \
  "  FROM fresh f, pos p, counted c, head h" \
  "), upsert AS (" \
  "  INSERT INTO {S}.streams AS s (stream_id, version, event_count, first_version, first_at," \
  "                               last_at, state)" \
  "  SELECT $1::text, h.version + c.n, c.n, h.version + 1, h.now, h.now, 0" \
  "  FROM head h, counted c WHERE c.n > 0" \
  "  ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version," \
  "    event_count = s.event_count + excluded.event_count," \
  "    first_version = CASE WHEN s.event_count = 0 THEN excluded.first_version" \
  "                         ELSE s.first_version END," \
  "    first_at = CASE WHEN s.event_count = 0 THEN excluded.first_at ELSE s.first_at END," \
  "    last_at = excluded.last_at, state = 0" \
  ")" \
  " SELECT h.version, h.accepted, c.n, p.last_sequence_id," \
  "  pg_catalog.set_config('es_glib.notify', coalesce(p.last_sequence_id::text, ''), FALSE)," \
  "  h.state" \
  " FROM head h CROSS JOIN counted c LEFT JOIN pos p ON TRUE"

/* After an append's COMMIT, in the same pipeline: the notification of
 * the last sequence id it wrote, if it wrote any (see APPEND_SQL). */
#define NOTIFY_SQL \
  "SELECT pg_catalog.pg_notify($1::text, s.n)" \
  " FROM (SELECT nullif(pg_catalog.current_setting('es_glib.notify', TRUE), '') AS n) AS s" \
  " WHERE s.n IS NOT NULL"

/* One block of $1 positions for a transaction of several appends, as its
 * first write; their APPEND_SQL find its start in the transaction's
 * setting es_glib.positions. */
#define RESERVE_SQL \
  "SELECT pg_catalog.set_config('es_glib.positions', {S}.reserve_positions($1::int4)::text, TRUE)"

/* The retention policies of the streams of the text[] $1, enforced after
 * their appends in the same transaction (under their locks). Ages count
 * from the start of the transaction (now()), which is no later than the
 * timestamps of the events just written: those are never too old. The
 * function is called only for streams under a policy: without one, an
 * append pays one primary-key lookup. */
#define RETAIN_SQL \
  "SELECT coalesce(sum({S}.apply_retention(s.stream_id, now(), NULL)), 0)::int8" \
  " FROM {S}.streams s, {S}.settings g WHERE s.stream_id = ANY ($1::text[])" \
  " AND (s.max_age > 0 OR s.max_count > 0 OR g.max_age > 0 OR g.max_count > 0)"

/* The fixed statements (SqlId, es-pg-private.h), made for the storage's
 * schema at construction. */
static const char * const sql_templates[N_SQL] = {
  [SQL_INSPECT] = INSPECT_SQL,
  [SQL_LOCK] = LOCK_SQL,
  [SQL_LOCK_MANY] = LOCK_MANY_SQL,
  [SQL_EXISTING_KEYS] = EXISTING_KEYS_SQL,
  [SQL_READ_VERSION_TABLE] = "SELECT version FROM {S}.es_glib_version",
  [SQL_WRITE_VERSION_TABLE] = "UPDATE {S}.es_glib_version SET version = $1::integer",
  [SQL_APPEND] = APPEND_SQL,
  [SQL_RESERVE] = RESERVE_SQL,
  [SQL_NOTIFY] = NOTIFY_SQL,
  [SQL_READ_STREAM] = READ_STREAM_SELECT " ORDER BY version LIMIT $3::int8",
  [SQL_READ_ALL] = READ_ALL_SELECT " ORDER BY sequence_id LIMIT $2::int8",
  /* Both served by the end of an index. */
  [SQL_RETAIN] = RETAIN_SQL,
  /* The kept version of a deleted stream too. */
  [SQL_STREAM_VERSION] = "SELECT coalesce(max(version), 0) FROM {S}.streams"
                         " WHERE stream_id = $1::text",
  /* The last position used, by an event or a delete, below the horizon. */
  [SQL_LAST_SEQUENCE_ID] = "SELECT {S}.all_head ()",
  /* From the stream's row: no row, empty. */
  [SQL_STREAM_METRICS] = "SELECT version, event_count, last_at FROM {S}.streams"
                         " WHERE stream_id = $1::text",
  [SQL_ALL_METRICS] = "SELECT {S}.all_head (),"
                      " (SELECT coalesce(sum(event_count), 0)::int8 FROM {S}.streams),"
                      " (SELECT recorded_at FROM {S}.events WHERE " BELOW_HORIZON
                      "  ORDER BY sequence_id DESC LIMIT 1)",
  [SQL_SAVE_SNAPSHOT] = "INSERT INTO {S}.snapshots (stream_id, projection_name, version, state,"
                        " recorded_at) VALUES ($1::text, $2::text, $3::int8, $4::bytea,"
                        " clock_timestamp()) ON CONFLICT (stream_id, projection_name) DO UPDATE"
                        " SET version = excluded.version, state = excluded.state,"
                        " recorded_at = excluded.recorded_at",
  [SQL_LOAD_SNAPSHOT] = "SELECT version, state, recorded_at FROM {S}.snapshots"
                        " WHERE stream_id = $1::text AND projection_name = $2::text",
};

/* ---------------------------------------------------------------------- *
 * Opening: the schema                                                     *
 * ---------------------------------------------------------------------- */

/* @template with {S} replaced by the quoted schema. */
char *
_es_pg_schema_sql (EsPgStorage *self,
                   const char  *template)
{
  GString *sql = g_string_new (template);

  g_string_replace (sql, "{S}", self->quoted_schema, 0);
  return g_string_free (sql, FALSE);
}

void
_es_pg_schema_make_statements (EsPgStorage *self)
{
  for (guint i = 0; i < N_SQL; i++)
    self->sql[i] = _es_pg_schema_sql (self, sql_templates[i]);
}

gboolean
_es_pg_schema_name_is_valid (const char *name)
{
  gsize len = strlen (name);

  if (len == 0 || len > 48 || !(g_ascii_islower (name[0]) || name[0] == '_'))
    return FALSE;
  for (gsize i = 1; i < len; i++)
    if (!(g_ascii_islower (name[i]) || g_ascii_isdigit (name[i]) || name[i] == '_'))
      return FALSE;
  return TRUE;
}

static gboolean
inspect_schema (EsPgStorage    *self,
                EsPgConnection *c,
                SchemaState    *state,
                GCancellable   *cancellable,
                GError        **error)
{
  const char *context = _("Reading the database schema");
  const char *values[] = { self->schema };
  EsPgStatement inspect = { self->sql[SQL_INSPECT], 1, values, NULL, NULL, FALSE };
  EsPgStatement version = { self->sql[SQL_READ_VERSION_TABLE], 0, NULL, NULL, NULL, FALSE };
  PGresult *result;

  result = _es_pg_connection_run_one (c, &inspect, cancellable, context, error);
  if (result == NULL)
    return FALSE;
  state->exists = g_str_equal (PQgetvalue (result, 0, 0), "t");
  state->n_objects = g_ascii_strtoll (PQgetvalue (result, 0, 1), NULL, 10);
  state->has_version = g_str_equal (PQgetvalue (result, 0, 2), "t");
  state->version = 0;
  PQclear (result);

  if (!state->has_version)
    return TRUE;

  /* Waits while another session holds the table locked (an upgrade). */
  result = _es_pg_connection_run_one (c, &version, cancellable, context, error);
  if (result == NULL)
    return FALSE;
  if (PQntuples (result) != 1 || PQgetisnull (result, 0, 0))
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a PostgreSQL schema name */
                   _("Schema '%s' is damaged: its es-glib version table does not hold "
                     "exactly one version"), self->schema);
      PQclear (result);
      return FALSE;
    }
  state->version = g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
  PQclear (result);
  return TRUE;
}

/* Whether es-glib may use (and if need be upgrade) the schema. */
static gboolean
check_schema (EsPgStorage        *self,
              const SchemaState  *state,
              GError            **error)
{
  /* Another application's tables (even one called "events"), views,
   * sequences or functions, and no es-glib version: not ours to touch. An
   * empty schema (created by an administrator, say) is fine. */
  if (!state->has_version && state->n_objects > 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a PostgreSQL schema name */
                   _("Schema '%s' is not an es-glib schema: it holds other tables or "
                     "functions and no es-glib version"), self->schema);
      return FALSE;
    }

  if (state->version > SCHEMA_VERSION || state->version < 0)
    {
      g_set_error (error, ES_ERROR, ES_ERROR_STORAGE,
                   /* Translators: %s is a PostgreSQL schema name, the numbers
                    * schema versions */
                   _("Schema '%s' was written by a newer es-glib: it has schema version "
                     "%lld, and this es-glib knows version %lld"),
                   self->schema, (long long) state->version, (long long) SCHEMA_VERSION);
      return FALSE;
    }

  return TRUE;
}

/* Brings the schema to SCHEMA_VERSION: creates it (and its tables) when it
 * is missing or empty, runs the missing migrations on an older one, does
 * nothing to an up-to-date one. Nothing is written unless the checks
 * pass, and the writing is one transaction, serialised among processes by
 * a transaction-scoped advisory lock: of several processes creating the
 * same schema at once, the first creates it and the others, once the lock
 * is theirs, look again and find it done. */
gboolean
_es_pg_schema_prepare (EsPgStorage    *self,
                       EsPgConnection *c,
                       GCancellable   *cancellable,
                       GError        **error)
{
  const char *context = _("Creating the database schema");
  g_autofree char *lock_key = g_strconcat ("es-glib schema ", self->schema, NULL);
  g_autofree char *version_text = g_strdup_printf ("%" G_GINT64_FORMAT, SCHEMA_VERSION);
  const char *lock_values[] = { lock_key };
  const char *version_values[] = { version_text };
  const EsPgStatement begin[] = {
    { "BEGIN", 0, NULL, NULL, NULL, FALSE },
    { self->sql[SQL_LOCK], 1, lock_values, NULL, NULL, FALSE },
  };
  EsPgStatement set_version = { self->sql[SQL_WRITE_VERSION_TABLE], 1, version_values, NULL, NULL,
                            FALSE };
  EsPgStatement commit = { "COMMIT", 0, NULL, NULL, NULL, FALSE };
  PGresult *results[G_N_ELEMENTS (begin)];
  SchemaState state = { 0, };
  PGresult *result;
  gint64 version;

  if (!inspect_schema (self, c, &state, cancellable, error) ||
      !check_schema (self, &state, error))
    return FALSE;
  if (state.version == SCHEMA_VERSION)
    return TRUE;

  if (!_es_pg_connection_run (c, begin, G_N_ELEMENTS (begin), results, NULL, cancellable, context,
                              error))
    goto fail;
  for (guint i = 0; i < G_N_ELEMENTS (begin); i++)
    PQclear (results[i]);

  /* Under the lock: what another process did is visible now. */
  if (!inspect_schema (self, c, &state, cancellable, error) ||
      !check_schema (self, &state, error))
    goto fail;

  if (!state.exists)
    {
      g_autofree char *create = g_strdup_printf ("CREATE SCHEMA %s", self->quoted_schema);

      if (!_es_pg_connection_run_script (c, create, cancellable, context, error))
        goto fail;
    }

  for (version = state.version; version < SCHEMA_VERSION; version++)
    {
      g_autofree char *sql = _es_pg_schema_sql (self, migrations[version]);

      if (!_es_pg_connection_run_script (c, sql, cancellable, context, error))
        goto fail;
    }

  if (state.version < SCHEMA_VERSION)
    {
      result = _es_pg_connection_run_one (c, &set_version, cancellable, context, error);
      if (result == NULL)
        goto fail;
      PQclear (result);
    }

  result = _es_pg_connection_run_one (c, &commit, cancellable, context, error);
  if (result == NULL)
    goto fail;
  PQclear (result);
  return TRUE;

fail:
  _es_pg_connection_rollback (c);
  return FALSE;
}
