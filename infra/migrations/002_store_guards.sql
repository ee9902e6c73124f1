-- Guards the stores rely on (added after 001_core, which is never edited).

-- At most one active admin key: two nodes starting at once with no ADMIN_API_KEY generate one key between
-- them (the loser's INSERT ... ON CONFLICT DO NOTHING inserts nothing and it reports the existing key).
CREATE UNIQUE INDEX api_keys_one_active_admin ON api_keys (kind) WHERE kind = 'admin' AND revoked_at IS NULL;

-- getByChannelId returns the newest context of a (provider, channel id).
DROP INDEX call_contexts_channel;
CREATE INDEX call_contexts_channel ON call_contexts (provider, channel_id, created_at DESC) WHERE channel_id IS NOT NULL;

-- Call events of a conversation, in the order they happened.
CREATE INDEX call_events_conversation ON call_events (conversation_id, occurred_at) WHERE conversation_id IS NOT NULL;
