-- Generated from internal/sigid, the SigID reference schema (16 hash partitions per
-- table), by `cd deploy/tests && go test -run TestComposeSchemaIsCurrent -update`; do not edit.
-- Created by the owner role of 00-extensions.sql, as in a real deployment.
SET ROLE sigid_owner;

CREATE SCHEMA IF NOT EXISTS "public";
CREATE TABLE "public"."tenant" (
	tenant_id  uuid PRIMARY KEY,
	name       text NOT NULL,
	status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
	created_at timestamptz NOT NULL DEFAULT now(),
	deleted_at timestamptz,
	CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
CREATE INDEX "tenant_deleted_idx" ON "public"."tenant" (tenant_id) WHERE status = 'deleted';
CREATE TABLE "public"."session" (
	tenant_id    uuid NOT NULL,
	session_id   uuid NOT NULL,
	user_id      uuid NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_seen_at timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz NOT NULL,
	ip           inet,
	user_agent   text,
	revoked_at   timestamptz,
	PRIMARY KEY (tenant_id, session_id)
) PARTITION BY HASH (tenant_id);
COMMENT ON TABLE "public"."session" IS 'Login sessions of SigID users, hash-partitioned by tenant.';
CREATE INDEX "session_tenant_user_idx" ON "public"."session" (tenant_id, user_id);
CREATE INDEX "session_tenant_expires_idx" ON "public"."session" (tenant_id, expires_at);
CREATE INDEX "session_expires_idx" ON "public"."session" (expires_at);
CREATE TABLE "public"."tenant_membership" (
	tenant_id       uuid NOT NULL,
	membership_id   bigserial NOT NULL,
	user_id         uuid NOT NULL,
	role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
	status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'removed')),
	mfa_enabled     boolean NOT NULL DEFAULT false,
	role_granted_at timestamptz NOT NULL DEFAULT now(),
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, membership_id),
	UNIQUE (tenant_id, user_id)
) PARTITION BY HASH (tenant_id);
CREATE INDEX "tenant_membership_active_admin_idx" ON "public"."tenant_membership" (tenant_id, role) INCLUDE (user_id, mfa_enabled, role_granted_at) WHERE status = 'active' AND role IN ('owner', 'admin');
CREATE INDEX "tenant_membership_user_idx" ON "public"."tenant_membership" (user_id);
CREATE TABLE "public"."tenant_subject_identifier" (
	tenant_id  uuid NOT NULL,
	subject    text NOT NULL,
	issuer     text NOT NULL,
	user_id    uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, issuer, subject)
) PARTITION BY HASH (tenant_id);
CREATE INDEX "tenant_subject_identifier_tenant_user_idx" ON "public"."tenant_subject_identifier" (tenant_id, user_id);
CREATE TABLE "public"."referral" (
	tenant_id        uuid NOT NULL,
	referral_id      bigserial NOT NULL,
	code             text NOT NULL,
	referrer_user_id uuid NOT NULL,
	created_at       timestamptz NOT NULL DEFAULT now(),
	expires_at       timestamptz,
	max_redemptions  integer NOT NULL DEFAULT 1 CHECK (max_redemptions > 0),
	PRIMARY KEY (tenant_id, referral_id),
	UNIQUE (tenant_id, code)
) PARTITION BY HASH (tenant_id);
CREATE INDEX "referral_tenant_referrer_idx" ON "public"."referral" (tenant_id, referrer_user_id);
CREATE TABLE "public"."referral_redemption" (
	tenant_id     uuid NOT NULL,
	redemption_id bigserial NOT NULL,
	referral_id   bigint NOT NULL,
	redeemed_by   uuid NOT NULL,
	redeemed_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, redemption_id),
	CONSTRAINT "referral_redemption_referral_fkey" FOREIGN KEY (tenant_id, referral_id) REFERENCES "public"."referral" (tenant_id, referral_id)
) PARTITION BY HASH (tenant_id);
CREATE INDEX "referral_redemption_tenant_referral_idx" ON "public"."referral_redemption" (tenant_id, referral_id);
CREATE TABLE "public"."session_p0" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE "public"."session_p1" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE "public"."session_p2" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE "public"."session_p3" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE "public"."session_p4" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE "public"."session_p5" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE "public"."session_p6" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE "public"."session_p7" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE "public"."session_p8" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE "public"."session_p9" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE "public"."session_p10" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE "public"."session_p11" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE "public"."session_p12" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE "public"."session_p13" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE "public"."session_p14" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE "public"."session_p15" PARTITION OF "public"."session" FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE TABLE "public"."tenant_membership_p0" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE "public"."tenant_membership_p1" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE "public"."tenant_membership_p2" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE "public"."tenant_membership_p3" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE "public"."tenant_membership_p4" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE "public"."tenant_membership_p5" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE "public"."tenant_membership_p6" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE "public"."tenant_membership_p7" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE "public"."tenant_membership_p8" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE "public"."tenant_membership_p9" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE "public"."tenant_membership_p10" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE "public"."tenant_membership_p11" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE "public"."tenant_membership_p12" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE "public"."tenant_membership_p13" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE "public"."tenant_membership_p14" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE "public"."tenant_membership_p15" PARTITION OF "public"."tenant_membership" FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE TABLE "public"."tenant_subject_identifier_p0" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE "public"."tenant_subject_identifier_p1" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE "public"."tenant_subject_identifier_p2" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE "public"."tenant_subject_identifier_p3" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE "public"."tenant_subject_identifier_p4" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE "public"."tenant_subject_identifier_p5" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE "public"."tenant_subject_identifier_p6" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE "public"."tenant_subject_identifier_p7" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE "public"."tenant_subject_identifier_p8" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE "public"."tenant_subject_identifier_p9" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE "public"."tenant_subject_identifier_p10" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE "public"."tenant_subject_identifier_p11" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE "public"."tenant_subject_identifier_p12" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE "public"."tenant_subject_identifier_p13" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE "public"."tenant_subject_identifier_p14" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE "public"."tenant_subject_identifier_p15" PARTITION OF "public"."tenant_subject_identifier" FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE TABLE "public"."referral_p0" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE "public"."referral_p1" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE "public"."referral_p2" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE "public"."referral_p3" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE "public"."referral_p4" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE "public"."referral_p5" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE "public"."referral_p6" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE "public"."referral_p7" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE "public"."referral_p8" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE "public"."referral_p9" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE "public"."referral_p10" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE "public"."referral_p11" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE "public"."referral_p12" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE "public"."referral_p13" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE "public"."referral_p14" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE "public"."referral_p15" PARTITION OF "public"."referral" FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE TABLE "public"."referral_redemption_p0" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE "public"."referral_redemption_p1" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE "public"."referral_redemption_p2" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE "public"."referral_redemption_p3" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE "public"."referral_redemption_p4" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE "public"."referral_redemption_p5" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE "public"."referral_redemption_p6" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE "public"."referral_redemption_p7" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE "public"."referral_redemption_p8" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE "public"."referral_redemption_p9" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE "public"."referral_redemption_p10" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE "public"."referral_redemption_p11" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE "public"."referral_redemption_p12" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE "public"."referral_redemption_p13" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE "public"."referral_redemption_p14" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE "public"."referral_redemption_p15" PARTITION OF "public"."referral_redemption" FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE VIEW "public"."active_session" AS
SELECT tenant_id, session_id, user_id, created_at, last_seen_at, expires_at, ip, user_agent
FROM "public"."session"
WHERE revoked_at IS NULL AND expires_at > now();
CREATE TABLE "public"."invitation" (
	invitation_id uuid PRIMARY KEY,
	tenant_id     uuid NOT NULL REFERENCES "public"."tenant" (tenant_id),
	email         text NOT NULL,
	role          text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
	status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
	invited_at    timestamptz NOT NULL DEFAULT now(),
	responded_at  timestamptz
);
CREATE INDEX "invitation_pending_invited_at_idx" ON "public"."invitation" (invited_at) INCLUDE (tenant_id) WHERE status = 'pending';
CREATE INDEX "invitation_tenant_idx" ON "public"."invitation" (tenant_id);
CREATE TABLE "public"."access_review" (
	review_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id        uuid NOT NULL REFERENCES "public"."tenant" (tenant_id),
	user_id          uuid NOT NULL,
	reviewed_at      timestamptz NOT NULL DEFAULT now(),
	reviewer_user_id uuid NOT NULL,
	outcome          text NOT NULL CHECK (outcome IN ('approved', 'role_reduced', 'access_removed'))
);
CREATE INDEX "access_review_tenant_user_reviewed_idx" ON "public"."access_review" (tenant_id, user_id, reviewed_at DESC);
CREATE INDEX "access_review_reviewed_idx" ON "public"."access_review" (reviewed_at) INCLUDE (tenant_id, user_id);

RESET ROLE;
