-- Active tenants with fewer than the minimum of active administrators
-- (owners count); findings are the administrators missing.
SELECT t.tenant_id::text AS tenant, @min_admins::int - coalesce(a.admins, 0) AS findings
FROM tenant AS t
LEFT JOIN (
  SELECT m.tenant_id, count(*) AS admins
  FROM tenant_membership AS m
  WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
  GROUP BY m.tenant_id
) AS a ON a.tenant_id = t.tenant_id
WHERE t.status = 'active'
  AND coalesce(a.admins, 0) < @min_admins::int
