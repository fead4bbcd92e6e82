-- Current state per SKU x warehouse pair. version = number of events applied.
CREATE TABLE stock_levels (
  sku                 text        NOT NULL,
  warehouse           text        NOT NULL,
  on_hand             bigint      NOT NULL CHECK (on_hand >= 0),
  reserved            bigint      NOT NULL CHECK (reserved >= 0),
  committed           bigint      NOT NULL DEFAULT 0 CHECK (committed >= 0),
  low_stock_threshold bigint      NOT NULL DEFAULT 0,
  version             bigint      NOT NULL,
  last_seq            bigint      NOT NULL DEFAULT 0,
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sku, warehouse)
);

-- One row per reservation part (a reservation may span warehouses).
CREATE TABLE stock_holds (
  reservation_id text        NOT NULL,
  sku            text        NOT NULL,
  warehouse      text        NOT NULL,
  quantity       bigint      NOT NULL CHECK (quantity > 0),
  expires_at     timestamptz NOT NULL,
  status         text        NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
  owner          text        NOT NULL DEFAULT '', -- the principal (token sub) that reserved
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (reservation_id, sku, warehouse)
);
CREATE INDEX stock_holds_live ON stock_holds (sku) WHERE status IN ('held', 'committed');

-- Append-only domain event log in the contract's envelope terms; the outbox.
-- position gives commit order; (aggregate_id, event_version) is the per-aggregate sequence
-- and what makes two writers of one stream conflict. event_id is a random UUID that
-- consumers deduplicate by; it has no index (a random-key btree costs every write).
CREATE TABLE events (
  position       bigserial   PRIMARY KEY,
  event_id       uuid        NOT NULL,
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  event_version  bigint      NOT NULL CHECK (event_version > 0),
  event_type     text        NOT NULL,
  event_time     timestamptz NOT NULL,
  data           jsonb       NOT NULL,
  metadata       jsonb       NOT NULL,
  published_at   timestamptz,
  UNIQUE (aggregate_id, event_version)
);
CREATE INDEX events_unpublished ON events (position) WHERE published_at IS NULL;
