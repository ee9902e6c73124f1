/**
 * Lua for the `KeyValueCache` methods that need more than one command atomically. Written once here so the
 * ioredis client (media nodes) and the Upstash client (edge, `EVAL` over REST) run the very same scripts.
 * Arguments arrive as strings; scripts return integers or arrays of integers (the same over RESP2, RESP3
 * and Upstash's JSON).
 */

/** KEYS[1]; ARGV: by, ttlMs (0 = none). INCRBY, then PEXPIRE if the key has no TTL yet. Returns the value. */
export const INCR_WITH_TTL = `
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return value
`;

/**
 * KEYS[1]; ARGV: member, score, onlyIfExists ('1'|'0'), keyTtlMs (0 = none).
 * ZADD (or, with onlyIfExists, only when the member is there) and PEXPIRE the key. Returns 1 when written.
 */
export const ZADD_WITH_TTL = `
if ARGV[3] == '1' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`;

/**
 * KEYS[1]; ARGV: member, score, limit, pruneMaxScore, keyTtlMs (0 = none).
 * Prunes members scored <= pruneMaxScore, then adds (or re-scores) the member unless that would take the set
 * past `limit`. Returns {added (1|0), count}.
 */
export const ZADD_WITHIN_LIMIT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
local count = redis.call('ZCARD', KEYS[1])
local present = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not present and count >= tonumber(ARGV[3]) then
  return {0, count}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if not present then
  count = count + 1
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {1, count}
`;

/** Score bounds as Redis spells them. */
export function scoreBound(score: number): string {
  if (score === Infinity) return '+inf';
  if (score === -Infinity) return '-inf';
  return String(score);
}
