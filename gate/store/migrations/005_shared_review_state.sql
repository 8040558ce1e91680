-- State the review site writes that every gate replica must share and a restart must keep. Before this,
-- released hashes were appended to a bank file (read-only in every shipped deployment), and tokens and
-- the form/link signing key lived in each process's files or memory.

-- Reviewed false positives: the SHA-256 of every released upload. The gate matches each row as an exact
-- hit in `bank`, the policy's allowlist bank it was released into (gate/quarantine/allowlist.py).
-- `id` only grows, so (count, sum of ids) changes with every insert and delete: replicas poll that.
CREATE TABLE allowlist (
    id          bigserial PRIMARY KEY,
    sha256      text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bank        text NOT NULL,
    decision_id uuid,                            -- the released evidence item (none when added by hand)
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);

-- Reviewer and admin bearer tokens: only their SHA-256 (gate/admin/tokens.py).
CREATE TABLE review_tokens (
    name         text PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('reviewer', 'admin')),
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The HMAC key of the review page's CSRF tokens and reveal links, made once by whichever replica needs
-- it first (gate/admin/signing.py).
CREATE TABLE review_keys (
    name       text PRIMARY KEY,
    secret     bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
