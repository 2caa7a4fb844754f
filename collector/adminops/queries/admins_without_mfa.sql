-- Active owners and administrators without MFA, per tenant. Suspended or
-- removed members and deleted tenants never count.
SELECT m.tenant_id::text AS tenant, count(*) AS findings
FROM tenant_membership AS m
WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
  AND NOT m.mfa_enabled
  AND NOT EXISTS (SELECT FROM tenant AS t WHERE t.tenant_id = m.tenant_id AND t.status = 'deleted')
GROUP BY m.tenant_id
