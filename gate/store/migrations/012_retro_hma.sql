-- The HMA retro-hunt pass, once per index change across every process on the gate's Postgres: when HMA's
-- index is rebuilt, the stored PDQ hashes of GATE_RETRO_HMA_WINDOW_DAYS are looked up again, and every
-- replica and `upload-gate watch` notices the same rebuild. The row says which of HMA's indexes the
-- stored hashes were last looked up against, so a process that finds its index here skips its lookups.
-- Read and written under the retro-hunt advisory lock (gate/scan/retro_lock.py).
CREATE TABLE retro_hma_index (
    signal_type text PRIMARY KEY,         -- HMA's index: 'pdq'
    built_to    bigint NOT NULL,          -- its GET /m/index/status built_to (0: no index yet)
    looked_up   boolean NOT NULL,         -- true: a pass over the window completed for this index;
                                          -- false: the index the first process saw (nothing owed)
    updated_at  timestamptz NOT NULL DEFAULT now()
);
