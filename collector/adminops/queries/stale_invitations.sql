-- Invitations still pending longer than the stale invitation age, per
-- tenant. Deleted tenants never count. Reads the partial index on pending
-- invitations only (invitation_pending_invited_at_idx).
SELECT i.tenant_id::text AS tenant, count(*) AS findings
FROM invitation AS i
WHERE i.status = 'pending'
  AND i.invited_at < @now::timestamptz - @stale_invitation_age::interval
  AND NOT EXISTS (SELECT FROM tenant AS t WHERE t.tenant_id = i.tenant_id AND t.status = 'deleted')
GROUP BY i.tenant_id
