-- One row per upload the gate judged. Written by gate/store/decision_log.py, read by
-- `upload-gate decisions` / `upload-gate stats` and by later features (retro-hunts, back-testing, review).
CREATE TABLE decisions (
    id               uuid PRIMARY KEY,           -- UUIDv7 layout: sorts by time; replays dedupe on it
    time             timestamptz NOT NULL,
    client_ip        inet,                       -- after trusted-proxy handling
    did              text,                       -- the uploader DID as claimed (see did_verified)
    did_method       text NOT NULL,              -- access_jwt | service_auth | oauth | unknown | none
    did_verified     boolean NOT NULL DEFAULT false,
    declared_type    text,                       -- Content-Type the client sent
    media_type       text,                       -- sniffed from the bytes
    size             bigint,
    sha256           text,
    md5              text,
    sha1             text,
    cid              text,
    pdq              jsonb NOT NULL DEFAULT '[]', -- [{"hash", "quality", "transform"}]
    phash            text,
    dhash            text,
    width            integer,
    height           integer,
    unhashable       text,                       -- low_quality | corrupt | truncated | bomb
    unhashable_detail text,
    verdict          text CHECK (verdict IN ('forward', 'quarantine', 'reject')),  -- NULL: no decision reached
    rule             text,
    reason           text,
    matches          jsonb NOT NULL DEFAULT '[]', -- the matches that drove the verdict
    all_matches      jsonb NOT NULL DEFAULT '[]', -- every match seen
    shadow_verdict   text CHECK (shadow_verdict IN ('forward', 'quarantine', 'reject')),
    shadow_rule      text,
    shadow_matches   jsonb NOT NULL DEFAULT '[]',
    shadow_only      boolean NOT NULL DEFAULT false, -- a shadow rule would have acted more severely
    full_scan        boolean,
    notes            jsonb NOT NULL DEFAULT '[]',
    policy_version   text,
    timings_ms       jsonb NOT NULL DEFAULT '{}',  -- per pipeline stage
    upstream_status  integer,                    -- the PDS answer for forwarded uploads
    error            text,
    cached           boolean NOT NULL DEFAULT false
);

CREATE INDEX decisions_time_idx ON decisions (time);
CREATE INDEX decisions_did_time_idx ON decisions (did, time);
CREATE INDEX decisions_sha256_idx ON decisions (sha256);
CREATE INDEX decisions_cid_idx ON decisions (cid);
CREATE INDEX decisions_verdict_time_idx ON decisions (verdict, time);
CREATE INDEX decisions_rule_time_idx ON decisions (rule, time);
