-- Who placed an item's legal hold, when and why (the matter: a preservation request, a subpoena). The
-- flag is evidence.legal_hold (002); while it is set the bytes are never purged or released. Placing and
-- lifting are both written to `audit`, which keeps the history; these columns say what holds it now.
ALTER TABLE evidence
    ADD COLUMN legal_hold_reason text,
    ADD COLUMN legal_hold_by     text,
    ADD COLUMN legal_hold_at     timestamptz;

-- Holds placed before this migration (through the Python API only) take who and when from the audit.
UPDATE evidence e SET
    legal_hold_reason = 'not recorded (placed before migration 006)',
    legal_hold_by = coalesce(a.actor, 'unknown'),
    legal_hold_at = a.at
FROM (SELECT e2.decision_id,
             (SELECT actor FROM audit WHERE subject = e2.decision_id::text AND action = 'legal_hold'
              ORDER BY at DESC, id DESC LIMIT 1) AS actor,
             (SELECT at FROM audit WHERE subject = e2.decision_id::text AND action = 'legal_hold'
              ORDER BY at DESC, id DESC LIMIT 1) AS at
      FROM evidence e2 WHERE e2.legal_hold) AS a
WHERE e.decision_id = a.decision_id;

ALTER TABLE evidence
    ADD CONSTRAINT evidence_legal_hold_said CHECK (NOT legal_hold OR (legal_hold_reason IS NOT NULL AND legal_hold_by IS NOT NULL));
