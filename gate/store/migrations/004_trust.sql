-- Trust before judgement (issue 12): a decision names an uploader only once the PDS accepted the caller.
--   did           the verified DID (NULL: the PDS never accepted this caller, or was never asked)
--   claimed_did   what the token itself said, kept only beside a verified DID
--   verified_how  how it was verified: 'pds' (the PDS accepted the forwarded upload, or the empty-body
--                 probe the gate sends before revealing a block verdict)
ALTER TABLE decisions ADD COLUMN claimed_did text, ADD COLUMN verified_how text;

-- Rows written before this migration recorded the token's claim in `did`, verified or not. An unverified
-- claim is attacker-written text: it moves to `claimed_did`, so no row attributes an upload to a DID the
-- PDS never accepted (`upload-gate decisions --did` and `stats` read `did`).
UPDATE decisions SET claimed_did = did, did = NULL WHERE NOT did_verified AND did IS NOT NULL;
UPDATE decisions SET claimed_did = did, verified_how = 'legacy' WHERE did_verified AND did IS NOT NULL;

-- The per-uploader evidence cap counts an account's items of the last hour.
CREATE INDEX evidence_verified_did_created_idx ON evidence (verified_did, created_at)
    WHERE verified_did IS NOT NULL;
