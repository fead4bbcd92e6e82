-- Orders whose saga or compensation is under way carry state {"saga":"open"}; a starting
-- node resumes each of them. The partial index keeps that lookup off the settled orders.
CREATE INDEX entity_state_unsettled ON entity_state (aggregate_type)
  WHERE state->>'saga' = 'open';
