-- Active tenants with fewer than the minimum of active administrators
-- (owners count); findings are the administrators missing. The ordered
-- subquery counts along the active-administrator index (a merge of sorted
-- partitions, then a streaming count), so memory stays flat however many
-- tenants there are.
SELECT t.tenant_id::text AS tenant, @min_admins::int - coalesce(a.admins, 0) AS findings
FROM tenant AS t
LEFT JOIN (
  SELECT s.tenant_id, count(*) AS admins
  FROM (
    SELECT m.tenant_id
    FROM tenant_membership AS m
    WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
    ORDER BY m.tenant_id
  ) AS s
  GROUP BY s.tenant_id
) AS a ON a.tenant_id = t.tenant_id
WHERE t.status = 'active'
  AND coalesce(a.admins, 0) < @min_admins::int
