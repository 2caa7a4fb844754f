-- Active owners and administrators without MFA, per tenant. Suspended or
-- removed members and deleted tenants never count.
SELECT m.tenant_id::text AS tenant, count(*) AS findings
FROM tenant_membership AS m
JOIN tenant AS t ON t.tenant_id = m.tenant_id
WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
  AND m.mfa_enabled IS NOT TRUE
  AND t.status <> 'deleted' AND t.deleted_at IS NULL
GROUP BY m.tenant_id
