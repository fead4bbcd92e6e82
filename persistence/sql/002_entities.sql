-- Products, carts and orders: one row per entity with its current state (orders keep only
-- owner and status here: their state is the fold of their events), written in the same
-- statement as the entity's events. version = number of events applied; the write is
-- version-checked, so two writers of one entity can never both succeed.
CREATE TABLE entity_state (
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  version        bigint      NOT NULL CHECK (version > 0),
  owner          text        NOT NULL DEFAULT '',
  status         text        NOT NULL DEFAULT '',
  state          jsonb       NOT NULL DEFAULT '{}',
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (aggregate_type, aggregate_id)
);
-- Sagas to resume and carts to expire are found by status.
CREATE INDEX entity_state_status ON entity_state (aggregate_type, status, updated_at);

-- A product's sku may equal a cart's or an order's id: the per-aggregate sequence is unique
-- per aggregate type.
ALTER TABLE events DROP CONSTRAINT events_aggregate_id_event_version_key;
ALTER TABLE events ADD CONSTRAINT events_aggregate_sequence
  UNIQUE (aggregate_type, aggregate_id, event_version);
