-- The cluster's source of truth: who is a member, and which node owns which shard.
-- A node heartbeats its row; a row whose heartbeat is older than a lease is a dead member.
CREATE TABLE cluster_nodes (
  id              text        PRIMARY KEY,
  incarnation     text        NOT NULL,
  http_address    text        NOT NULL,
  cluster_address text        NOT NULL,
  status          text        NOT NULL CHECK (status IN ('joining', 'up', 'draining', 'down', 'left')),
  actors          bigint      NOT NULL DEFAULT 0,
  drain_requested boolean     NOT NULL DEFAULT false,
  started_at      timestamptz NOT NULL DEFAULT now(),
  heartbeat_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per shard that was ever owned. `epoch` grows on every acquisition and release, and
-- every durable write of an entity names the epoch it was made under: a write whose epoch is no
-- longer the shard's is refused in its own statement (fencing). The owner is a node
-- incarnation (one process run), so a restarted node never inherits its old leases.
CREATE TABLE shard_leases (
  shard       integer     PRIMARY KEY,
  node        text,
  incarnation text,
  epoch       bigint      NOT NULL,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX shard_leases_by_owner ON shard_leases (incarnation);
