-- Active owners and administrators with no access review within the review
-- interval who have held the role longer than that: the review clock starts
-- at the later of the last review and the role grant. Suspended or removed
-- members and deleted tenants never count.
SELECT m.tenant_id::text AS tenant, count(*) AS findings
FROM tenant_membership AS m
WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
  AND m.role_granted_at < @now::timestamptz - @review_interval::interval
  AND NOT EXISTS (
    SELECT FROM access_review AS r
    WHERE r.tenant_id = m.tenant_id AND r.user_id = m.user_id
      AND r.reviewed_at >= @now::timestamptz - @review_interval::interval
  )
  AND NOT EXISTS (SELECT FROM tenant AS t WHERE t.tenant_id = m.tenant_id AND t.status = 'deleted')
GROUP BY m.tenant_id
