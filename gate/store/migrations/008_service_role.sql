-- The `service` role (issue 17): tokens for other services' use of the hash/match/scan API (gate/api),
-- which opens nothing of the review site. The check of 005 named two roles; it names three now.
ALTER TABLE review_tokens DROP CONSTRAINT review_tokens_role_check;
ALTER TABLE review_tokens ADD CONSTRAINT review_tokens_role_check
    CHECK (role IN ('reviewer', 'admin', 'service'));
