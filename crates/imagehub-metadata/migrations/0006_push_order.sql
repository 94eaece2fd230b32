-- Push time in milliseconds: "latest image" and image listings order by it, and two
-- pushes within one second must still come out in the order they happened.
ALTER TABLE manifests ADD COLUMN pushed_at_ms INTEGER NOT NULL DEFAULT 0;
UPDATE manifests SET pushed_at_ms = pushed_at * 1000;
