-- Invitations still pending longer than the stale invitation age, per tenant.
-- Deleted tenants never count.
SELECT i.tenant_id::text AS tenant, count(*) AS findings
FROM invitation AS i
JOIN tenant AS t ON t.tenant_id = i.tenant_id
WHERE i.status = 'pending'
  AND i.invited_at < @now::timestamptz - @stale_invitation_age::interval
  AND t.status <> 'deleted' AND t.deleted_at IS NULL
GROUP BY i.tenant_id
