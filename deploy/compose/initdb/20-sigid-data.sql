-- Seed data for the compose stack: the shape of internal/sigid's generator
-- in plain SQL, so the postgres image loads it without Go. Deterministic
-- (no random()), with timestamps relative to the load so ages make sense on
-- any day, and skewed on purpose so the dashboards and alerts have
-- something to show:
--   * 3 huge tenants hold 45% of every hot table (the session partitions
--     holding them exceed 4x the median: the skew rule holds);
--   * the other 397 tenants share the rest along a 1/k long tail;
--   * admin-ops findings of every kind: owners and administrators without
--     MFA, tenants below two administrators, administrators without an
--     access review in 90 days, invitations pending for more than 30 days.
-- deploy/deploy_test.go loads it into a real PostgreSQL and checks all of
-- the above as the monitoring role.
SET ROLE sigid_owner;

CREATE TEMPORARY TABLE seed_tenant AS
WITH t AS (SELECT g AS t FROM generate_series(1, 400) AS g),
tail AS (SELECT sum(1.0 / (t - 3)) AS h FROM t WHERE t > 3)
SELECT t.t,
       md5('sigid-tenant-' || t.t)::uuid AS tenant_id,
       CASE WHEN t.t <= 3 THEN 0.15 ELSE 0.55 / (t.t - 3) / tail.h END AS share
FROM t, tail;

-- Rows per tenant of each hot table: its share of the table's total, at least 1.
CREATE TEMPORARY TABLE seed_size AS
SELECT t, tenant_id,
       greatest(1, round(share * 50000))::int AS sessions,
       greatest(2, round(share * 20000))::int AS members,
       greatest(1, round(share * 20000))::int AS subjects,
       greatest(1, round(share * 5000))::int  AS referrals
FROM seed_tenant;

INSERT INTO tenant (tenant_id, name, status, created_at, deleted_at)
SELECT tenant_id,
       'tenant-' || lpad(t::text, 3, '0'),
       CASE WHEN t % 97 = 0 THEN 'deleted' WHEN t % 50 = 0 THEN 'suspended' ELSE 'active' END,
       now() - make_interval(days => 400 + t),
       CASE WHEN t % 97 = 0 THEN now() - make_interval(days => t % 30) END
FROM seed_size;

-- Member k of tenant t: k = 1 is the owner, k = 2 an administrator in three
-- tenants of four, k = 3 a suspended administrator in one of five.
INSERT INTO tenant_membership (tenant_id, user_id, role, status, mfa_enabled, role_granted_at, created_at, updated_at)
SELECT s.tenant_id,
       md5('sigid-user-' || s.t || '-' || k)::uuid,
       CASE WHEN k = 1 THEN 'owner'
            WHEN k = 2 AND s.t % 4 <> 0 THEN 'admin'
            WHEN k = 3 AND s.t % 5 = 0 THEN 'admin'
            ELSE 'member' END,
       CASE WHEN k = 3 AND s.t % 5 = 0 THEN 'suspended' WHEN k % 41 = 0 THEN 'removed' ELSE 'active' END,
       CASE WHEN k = 1 THEN s.t % 10 <> 0 WHEN k = 2 THEN s.t % 7 <> 0 ELSE k % 3 = 0 END,
       now() - make_interval(days => (s.t * 7 + k) % 365),
       now() - make_interval(days => 365 + k % 30),
       now() - make_interval(days => k % 30)
FROM seed_size s, generate_series(1, s.members) AS k;

-- Two tenants in three reviewed their owner and administrators this quarter.
INSERT INTO access_review (tenant_id, user_id, reviewed_at, reviewer_user_id, outcome)
SELECT s.tenant_id,
       md5('sigid-user-' || s.t || '-' || k)::uuid,
       now() - make_interval(days => s.t % 60),
       md5('sigid-user-' || s.t || '-1')::uuid,
       'approved'
FROM seed_size s, generate_series(1, 2) AS k
WHERE s.t % 3 <> 0;

INSERT INTO invitation (invitation_id, tenant_id, email, role, status, invited_at, responded_at)
SELECT md5('sigid-invitation-' || s.t || '-' || j)::uuid,
       s.tenant_id,
       'invitee' || j || '@tenant-' || s.t || '.example',
       CASE WHEN j = 1 THEN 'admin' ELSE 'member' END,
       CASE WHEN j = 1 THEN 'pending' WHEN j = 2 THEN 'accepted' ELSE 'expired' END,
       now() - make_interval(days => (s.t * j) % 75),
       CASE WHEN j > 1 THEN now() - make_interval(days => (s.t * j) % 75) + interval '1 day' END
FROM seed_size s, generate_series(1, 1 + s.t % 4) AS j;

INSERT INTO session (tenant_id, session_id, user_id, created_at, last_seen_at, expires_at, ip, user_agent, revoked_at)
SELECT s.tenant_id,
       md5('sigid-session-' || s.t || '-' || k)::uuid,
       md5('sigid-user-' || s.t || '-' || (1 + (k - 1) % s.members))::uuid,
       now() - make_interval(mins => (k * 37) % 43200),
       now() - make_interval(mins => (k * 37) % 43200) + make_interval(mins => k % 600),
       now() - make_interval(mins => (k * 37) % 43200) + interval '14 days',
       '10.0.0.0'::inet + (s.t * 65536 + k % 65536),
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64)', 'Mozilla/5.0 (Macintosh)', 'SigID-iOS/4.2', 'SigID-Android/4.2'])[1 + k % 4],
       CASE WHEN k % 20 = 0 THEN now() - make_interval(mins => k % 1440) END
FROM seed_size s, generate_series(1, s.sessions) AS k;

INSERT INTO tenant_subject_identifier (tenant_id, subject, issuer, user_id, created_at)
SELECT s.tenant_id,
       'subject-' || s.t || '-' || k,
       'https://idp' || (k % 3) || '.example',
       md5('sigid-user-' || s.t || '-' || (1 + (k - 1) % s.members))::uuid,
       now() - make_interval(days => k % 365)
FROM seed_size s, generate_series(1, s.subjects) AS k;

INSERT INTO referral (tenant_id, code, referrer_user_id, created_at, expires_at, max_redemptions)
SELECT s.tenant_id,
       'R' || s.t || '-' || k,
       md5('sigid-user-' || s.t || '-' || (1 + (k - 1) % s.members))::uuid,
       now() - make_interval(days => k % 90),
       now() + make_interval(days => 30 - k % 60),
       1 + k % 3
FROM seed_size s, generate_series(1, s.referrals) AS k;

-- Every other referral was redeemed once.
INSERT INTO referral_redemption (tenant_id, referral_id, redeemed_by, redeemed_at)
SELECT r.tenant_id, r.referral_id, md5('sigid-redeemer-' || r.code)::uuid, r.created_at + interval '1 hour'
FROM referral r
WHERE r.referral_id % 2 = 0;

RESET ROLE;
-- Planner statistics and live-row counts for the collectors and probes.
ANALYZE tenant, invitation, access_review, session, tenant_membership, tenant_subject_identifier, referral, referral_redemption;
