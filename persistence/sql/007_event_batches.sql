-- One outbox row per entity batch: the events one write of one entity appended, in order, as
-- parallel arrays (event i has version first_version + i - 1). A hot pair's batch of 300
-- reservations was 300 rows and 900 index entries; it is one row and two. The relay expands
-- the rows (order and envelope unchanged); `events` below is the same expansion as a view.
-- A batch starts where the entity's row said its stream ended (the state row's version check
-- in the same statement), so one unique entry per batch start is the backstop that two
-- writers of one stream conflict.
CREATE TABLE event_batches (
  position        bigserial NOT NULL,
  txid            xid8      NOT NULL DEFAULT pg_current_xact_id(),
  aggregate_type  text      NOT NULL,
  aggregate_id    text      NOT NULL,
  first_version   bigint    NOT NULL CHECK (first_version > 0),
  node            text      NOT NULL DEFAULT '',
  event_ids       uuid[]    NOT NULL,
  event_types     text[]    NOT NULL,
  event_times     bigint[]  NOT NULL, -- milliseconds since the epoch
  data            jsonb[]   NOT NULL,
  correlation_ids text[]    NOT NULL,
  causation_ids   text[]    NOT NULL,
  user_ids        text[]    NOT NULL,
  CHECK (cardinality(event_ids) > 0),
  CONSTRAINT event_batches_sequence UNIQUE (aggregate_type, aggregate_id, first_version)
);
CREATE INDEX event_batches_relay_order ON event_batches (txid, position);

INSERT INTO event_batches (position, txid, aggregate_type, aggregate_id, first_version, node,
  event_ids, event_types, event_times, data, correlation_ids, causation_ids, user_ids)
SELECT position, txid, aggregate_type, aggregate_id, event_version,
  coalesce(metadata->>'node', ''), ARRAY[event_id], ARRAY[event_type],
  ARRAY[round(extract(epoch FROM event_time) * 1000)::bigint], ARRAY[data],
  ARRAY[coalesce(metadata->>'correlationId', '')], ARRAY[coalesce(metadata->>'causationId', '')],
  ARRAY[coalesce(metadata->>'userId', '')]
FROM events ORDER BY position;
SELECT setval('event_batches_position_seq', coalesce((SELECT max(position) FROM events), 0) + 1,
              false);

DROP VIEW outbox_pending;
DROP TABLE events;

-- Every event as a row, as before (for people, tests and the order stream).
CREATE VIEW events AS
  SELECT b.position, b.txid, e.id AS event_id, b.aggregate_type, b.aggregate_id,
         b.first_version + e.n - 1 AS event_version, e.t AS event_type,
         to_timestamp(e.ms / 1000.0) AS event_time, e.d AS data,
         jsonb_build_object('correlationId', e.c, 'causationId', e.k, 'userId', e.u,
                            'node', b.node) AS metadata
  FROM event_batches b,
       unnest(b.event_ids, b.event_types, b.event_times, b.data, b.correlation_ids,
              b.causation_ids, b.user_ids) WITH ORDINALITY AS e(id, t, ms, d, c, k, u, n);

-- An event inserted by hand (an operator's repair, a test) becomes a batch of one.
CREATE FUNCTION events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO event_batches (txid, aggregate_type, aggregate_id, first_version, node, event_ids,
    event_types, event_times, data, correlation_ids, causation_ids, user_ids)
  VALUES (coalesce(NEW.txid, pg_current_xact_id()), NEW.aggregate_type, NEW.aggregate_id,
    NEW.event_version, coalesce(NEW.metadata->>'node', ''),
    ARRAY[coalesce(NEW.event_id, gen_random_uuid())], ARRAY[NEW.event_type],
    ARRAY[round(extract(epoch FROM coalesce(NEW.event_time, now())) * 1000)::bigint],
    ARRAY[coalesce(NEW.data, '{}')], ARRAY[coalesce(NEW.metadata->>'correlationId', '')],
    ARRAY[coalesce(NEW.metadata->>'causationId', '')], ARRAY[coalesce(NEW.metadata->>'userId', '')]);
  RETURN NEW;
END $$;
CREATE TRIGGER events_insert INSTEAD OF INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION events_insert();

-- The mark names an event inside a batch now: (txid, position, event_version). The rows
-- relayed so far were batches of one, delivered whole.
ALTER TABLE outbox_progress ADD COLUMN event_version bigint NOT NULL
  DEFAULT 9223372036854775807;
ALTER TABLE outbox_progress ALTER COLUMN event_version SET DEFAULT 0;

CREATE VIEW outbox_pending AS
  SELECT e.* FROM events e, outbox_progress p
  WHERE (e.txid, e.position, e.event_version) > (p.txid, p.position, p.event_version);
