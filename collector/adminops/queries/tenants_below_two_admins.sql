-- Active tenants with fewer than the minimum of active administrators
-- (owners count); findings are the administrators missing.
SELECT t.tenant_id::text AS tenant, @min_admins::int - count(m.user_id) AS findings
FROM tenant AS t
LEFT JOIN tenant_membership AS m
  ON m.tenant_id = t.tenant_id AND m.role IN ('owner', 'admin') AND m.status = 'active'
WHERE t.status = 'active' AND t.deleted_at IS NULL
GROUP BY t.tenant_id
HAVING count(m.user_id) < @min_admins::int
