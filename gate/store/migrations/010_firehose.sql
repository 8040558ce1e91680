-- The firehose watcher (issue 16, `upload-gate watch`): what a decision is about beyond its bytes, where
-- each firehose stands, and the blobs already judged.

-- The record a blob was seen in (at://DID/COLLECTION/RKEY): set for firehose decisions, shown by review.
ALTER TABLE decisions ADD COLUMN record_uri text;
ALTER TABLE evidence ADD COLUMN record_uri text;

-- One durable cursor per firehose (its wss:// URL): every event up to `seq` is fully handled (judged,
-- recorded, labelled). A restart subscribes from it: nothing after it is missed.
CREATE TABLE firehose_cursors (
    service    text PRIMARY KEY,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every blob CID judged from a firehose, with the judgement it got: a CID seen again (a re-post, an
-- edit, an event delivered again after a restart) is never fetched again; its new record gets the same
-- verdict and labels.
CREATE TABLE firehose_blobs (
    cid         text PRIMARY KEY,
    decision_id uuid NOT NULL,
    verdict     text,                            -- NULL: judged without a decision (fetch refused...)
    rule        text,
    first_uri   text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
