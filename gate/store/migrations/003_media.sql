-- Issue 12, "every picture a viewer could see is judged": the bytes are judged as every type they
-- satisfy and every frame is hashed. `media_type` stays the type the upload was judged as (an image
-- type when any decoder read it); these record the rest. Each `pdq` entry also says its frame and
-- variant ("stored", "displayed" after EXIF orientation, "dihedral"), and each match its frame.
ALTER TABLE decisions
    ADD COLUMN media_types jsonb NOT NULL DEFAULT '[]',  -- every type: each image decoder's, then the sniffed one
    ADD COLUMN frames      integer;                      -- pictures decoded (frames, pages, icon sizes)
