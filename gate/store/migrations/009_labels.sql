-- The labeler (issue 16): atproto labels the gate publishes, as one append-only log. `seq` is the
-- subscribeLabels sequence and the queryLabels cursor; rows are inserted under one advisory lock
-- (gate/labels/store.py) so they commit in `seq` order and a reader never skips a late-committing row.
-- A label's current state is its latest row for (src, uri, cid, val); a negation is a row with neg.
-- Rows are written unsigned (the firehose watcher holds no key): the process that serves them signs each
-- once, with the key in GATE_LABELER_KEY_FILE, and stores the signature (`signed_by`: that key's did:key;
-- a row signed by another key is signed again).
CREATE TABLE labels (
    seq         bigserial PRIMARY KEY,
    src         text NOT NULL,                   -- the labeler DID
    uri         text NOT NULL,                   -- at:// record URI, or an account's DID
    cid         text,                            -- a version of the record; NULL: the URI whatever its version
    val         text NOT NULL CHECK (length(val) BETWEEN 1 AND 128),
    neg         boolean NOT NULL DEFAULT false,
    cts         text NOT NULL,                   -- exactly as signed
    exp         text,
    sig         bytea CHECK (sig IS NULL OR length(sig) = 64),
    signed_by   text,
    decision_id uuid,                            -- the decision that led to it (NULL: an operator)
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX labels_uri_val_seq_idx ON labels (uri, val, seq);
CREATE INDEX labels_uri_pattern_idx ON labels (uri text_pattern_ops);

-- Why a label applies: every decision that asked for (uri, val). A label is negated when the last of its
-- decisions is released by a reviewer (a false positive), not before.
CREATE TABLE label_reasons (
    uri         text NOT NULL,
    val         text NOT NULL,
    decision_id uuid NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (uri, val, decision_id)
);

CREATE INDEX label_reasons_decision_idx ON label_reasons (decision_id);
