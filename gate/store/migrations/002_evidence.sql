-- Encrypted evidence of quarantined (and, when the policy keeps them, rejected) uploads, and the audit
-- trail of every access to it. Written by gate/quarantine/evidence.py; read by the review page and by
-- `upload-gate evidence ...`. The decision row in `decisions` is never touched by any of this.
--
-- No foreign key to decisions: the decision log writes asynchronously (and may spool during an outage),
-- so the evidence row is usually committed before its decision row exists. The evidence row therefore
-- carries its own copy of what a report needs (hashes, CID, matches, uploader).
CREATE TABLE evidence (
    decision_id      uuid PRIMARY KEY,           -- = decisions.id; also the AES-GCM associated data
    created_at       timestamptz NOT NULL,       -- the upload's decision time
    verdict          text NOT NULL CHECK (verdict IN ('quarantine', 'reject')),
    state            text NOT NULL DEFAULT 'held'
                     CHECK (state IN ('held', 'released', 'confirmed', 'reported')),
    state_changed_at timestamptz NOT NULL,
    state_changed_by text NOT NULL,              -- 'gate' or the reviewer/operator who acted
    -- what the upload was (a snapshot of the decision)
    sha256           text NOT NULL,
    md5              text NOT NULL,
    sha1             text NOT NULL,
    cid              text NOT NULL,
    size             bigint NOT NULL,
    media_type       text,
    declared_type    text,
    pdq              jsonb NOT NULL DEFAULT '[]',
    rule             text,
    reason           text,
    matches          jsonb NOT NULL DEFAULT '[]',
    policy_version   text,
    client_ip        inet,
    did              text,                       -- uploader DID as claimed by the token
    did_method       text NOT NULL,
    verified_did     text,                       -- set only once the DID was verified (see review)
    verified_at      timestamptz,
    verified_how     text,
    -- the sealed bytes (envelope: a per-item data key wrapped by the keyring key key_id); all NULL once
    -- purged or released
    key_id           text,
    wrapped_key      bytea,                      -- wrap_nonce || AES-GCM(KEK, data key, aad=decision id)
    nonce            bytea,                      -- 96-bit random nonce of the content
    ciphertext       bytea,                      -- AES-GCM(data key, bytes, aad=decision id) incl. tag
    -- retention
    expires_at       timestamptz,                -- NULL: no deadline yet (confirmed, not yet reported)
    legal_hold       boolean NOT NULL DEFAULT false,
    report_id        text,                       -- CyberTipline report id
    reported_at      timestamptz,
    human_viewed     boolean NOT NULL DEFAULT false,
    purged_at        timestamptz,
    purge_reason     text,
    CHECK ((ciphertext IS NULL) = (key_id IS NULL))
);

CREATE INDEX evidence_state_created_idx ON evidence (state, created_at);
CREATE INDEX evidence_expires_idx ON evidence (expires_at) WHERE ciphertext IS NOT NULL;
CREATE INDEX evidence_key_idx ON evidence (key_id) WHERE key_id IS NOT NULL;
CREATE INDEX evidence_sha256_idx ON evidence (sha256);

-- Who did what to which item, when: every list, preview, reveal, decision and export.
CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,                       -- token name / operator; 'gate' for the gate itself
    action  text NOT NULL,                       -- e.g. list, preview, reveal, release, confirm, export, purge
    subject text,                                -- usually an evidence decision id
    detail  jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_subject_at_idx ON audit (subject, at);
CREATE INDEX audit_at_idx ON audit (at);
