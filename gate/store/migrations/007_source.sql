-- Which path judged the bytes of a decision: the upload path, and the paths that will call the same
-- judge (backfill of blobs the PDS already stores, retro-hunts when banks change, the firehose, the
-- hash/match API). Every row written before this migration was an upload.
ALTER TABLE decisions
    ADD COLUMN source text NOT NULL DEFAULT 'upload'
        CHECK (source IN ('upload', 'backfill', 'retro', 'firehose', 'api'));
