-- The upkeep job now deletes provider call records older than PROVIDER_CALL_RETENTION_DAYS
-- (90 by default, at least 32 so the current month's budget stays whole). That answers the TODO
-- in 20261205000002_provider_calls.sql, which stays as it is because applied migrations are
-- never edited. The existing indexes lead with tenant_id, so the delete needs one on time alone.
CREATE INDEX provider_calls_created_idx ON provider_calls (created_at);
