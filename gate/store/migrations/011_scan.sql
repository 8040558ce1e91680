-- Judging what the PDS already stores (backfill: `upload-gate scan`) and re-judging stored hashes when a
-- bank gains entries (retro-hunts). Both write ordinary decision rows (source 'backfill' / 'retro') and act
-- on them per the policy's [scan] table; these record what they did and where a scan has got to.

-- What a scan or retro-hunt did about the decision, in order: [{"action", "result", "detail"}], action one
-- of review | withhold | takedown, result one of done | shadow | capped | refused | failed.
-- `origin`: a retro decision's original one (the upload or backfill it re-judges).
-- `records`: the at:// URIs of the records that reference the blob, when known (a scan reads them from
-- the repo; an upload is judged before any record uses it).
ALTER TABLE decisions
    ADD COLUMN actions jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN origin  uuid,
    ADD COLUMN records jsonb NOT NULL DEFAULT '[]';

-- Per repo: how far `upload-gate scan` has got. A repo is re-listed only when its rev moved past
-- `since_rev` (then only blobs of newer records: listBlobs?since=) or with --rescan.
CREATE TABLE scan_repos (
    did         text PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('scanning', 'done', 'failed')),
    since_rev   text,                        -- the rev a finished pass covered
    pass_rev    text,                        -- the rev the pass under way started at
    blobs       bigint NOT NULL DEFAULT 0,   -- blobs recorded in this repo, every pass
    error       text,                        -- why the repo could not be read (state 'failed')
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Per blob: each (repo, CID) a scan handled — judged (its decision) or not (why): a killed scan resumes
-- without reading any of these again, except those whose problem may pass (unavailable, matcher_error).
CREATE TABLE scan_blobs (
    did          text NOT NULL,
    cid          text NOT NULL,
    decision_id  uuid,                       -- NULL: not judged, see problem
    problem      text,                       -- bounded kind: unavailable | too_large | corrupt | missing | matcher_error ...
    detail       text,
    scanned_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (did, cid)
);

-- The retro decisions made of one original.
CREATE INDEX decisions_origin_idx ON decisions (origin) WHERE origin IS NOT NULL;
