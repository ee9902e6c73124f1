import { assertLimit, assertScore, assertTtlMs, CacheError, type KeyValueCache } from './key-value-cache';

type Value =
  | { readonly type: 'string'; value: string }
  | { readonly type: 'hash'; readonly fields: Map<string, string> }
  | { readonly type: 'zset'; readonly members: Map<string, number> };

interface Entry {
  value: Value;
  /** Absolute time on the injected clock; undefined = no TTL. */
  expiresAt?: number;
}

export interface MemoryCacheOptions {
  /** Drives TTL expiry (tests pass a fake clock and advance it). Default: `performance.now()`. */
  clock?: { now(): number };
  /** How often (on the clock) a write sweeps every expired key, so keys never read again do not pile up. */
  sweepIntervalMs?: number;
}

/**
 * `KeyValueCache` in one process's memory: the embedded default of `npm start` (a single media node) and
 * the reference the Redis clients are tested against (the same suite runs on both). Every method runs to
 * completion synchronously, so each is atomic as Redis would make it. Expired keys vanish on access and in
 * a sweep at most every `sweepIntervalMs`; empty hashes and sorted sets are deleted, as Redis does.
 */
export class MemoryCache implements KeyValueCache {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: { now(): number };
  private readonly sweepIntervalMs: number;
  private lastSweepAt: number;

  constructor(options: MemoryCacheOptions = {}) {
    this.clock = options.clock ?? { now: () => performance.now() };
    this.sweepIntervalMs = options.sweepIntervalMs ?? 1_000;
    this.lastSweepAt = this.clock.now();
  }

  /** Live keys (after expiry); for tests and diagnostics. */
  get size(): number {
    this.sweep(true);
    return this.entries.size;
  }

  async get(key: string): Promise<string | null> {
    const entry = this.read(key, 'string');
    return entry ? entry.value : null;
  }

  async set(key: string, value: string, options: { ttlMs?: number; ifAbsent?: boolean } = {}): Promise<boolean> {
    if (options.ttlMs !== undefined) assertTtlMs(options.ttlMs);
    this.sweep();
    if (options.ifAbsent && this.live(key)) return false;
    this.entries.set(key, { value: { type: 'string', value }, ...this.expiry(options.ttlMs) });
    return true;
  }

  async del(key: string): Promise<boolean> {
    const existed = this.live(key) !== undefined;
    this.entries.delete(key);
    return existed;
  }

  async incr(key: string, options: { by?: number; ttlMs?: number } = {}): Promise<number> {
    const by = options.by ?? 1;
    if (!Number.isSafeInteger(by)) throw new CacheError('BAD_ARGUMENT', `incr by must be an integer, got ${by}`, false);
    if (options.ttlMs !== undefined) assertTtlMs(options.ttlMs);
    this.sweep();
    const entry = this.live(key);
    if (!entry) {
      this.entries.set(key, { value: { type: 'string', value: String(by) }, ...this.expiry(options.ttlMs) });
      return by;
    }
    const value = this.typed(key, entry, 'string');
    if (!/^-?\d+$/.test(value.value)) throw new CacheError('CACHE_FAILED', `ERR value at ${key} is not an integer`, false);
    const next = Number(value.value) + by;
    value.value = String(next);
    if (options.ttlMs !== undefined && entry.expiresAt === undefined) entry.expiresAt = this.clock.now() + options.ttlMs;
    return next;
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    const entry = this.live(key);
    if (!entry) return false;
    entry.expiresAt = this.clock.now() + ttlMs;
    return true;
  }

  async hset(key: string, fields: Readonly<Record<string, string>>, options: { ttlMs?: number } = {}): Promise<void> {
    if (options.ttlMs !== undefined) assertTtlMs(options.ttlMs);
    const names = Object.keys(fields);
    if (names.length === 0) throw new CacheError('BAD_ARGUMENT', `hset ${key} needs at least one field`, false);
    this.sweep();
    let entry = this.live(key);
    if (!entry) {
      entry = { value: { type: 'hash', fields: new Map() } };
      this.entries.set(key, entry);
    }
    const hash = this.typed(key, entry, 'hash');
    for (const name of names) hash.fields.set(name, fields[name] as string);
    if (options.ttlMs !== undefined) entry.expiresAt = this.clock.now() + options.ttlMs;
  }

  async hgetall(key: string): Promise<Record<string, string> | null> {
    const hash = this.read(key, 'hash');
    return hash ? Object.fromEntries(hash.fields) : null;
  }

  async zadd(key: string, member: string, score: number, options: { onlyIfExists?: boolean; keyTtlMs?: number } = {}): Promise<boolean> {
    assertScore(score);
    if (options.keyTtlMs !== undefined) assertTtlMs(options.keyTtlMs, 'keyTtlMs');
    this.sweep();
    const existing = this.read(key, 'zset');
    if (options.onlyIfExists && !existing?.members.has(member)) return false;
    this.writeZset(key, member, score, options.keyTtlMs);
    return true;
  }

  async zaddWithinLimit(
    key: string,
    member: string,
    score: number,
    options: { limit: number; pruneMaxScore: number; keyTtlMs?: number },
  ): Promise<{ added: boolean; count: number }> {
    assertScore(score);
    assertScore(options.pruneMaxScore, 'pruneMaxScore', true);
    if (options.keyTtlMs !== undefined) assertTtlMs(options.keyTtlMs, 'keyTtlMs');
    assertLimit(options.limit);
    this.sweep();
    this.removeRange(key, -Infinity, options.pruneMaxScore);
    const members = this.read(key, 'zset')?.members;
    const count = members?.size ?? 0;
    const present = members?.has(member) ?? false;
    if (!present && count >= options.limit) return { added: false, count };
    this.writeZset(key, member, score, options.keyTtlMs);
    return { added: true, count: present ? count : count + 1 };
  }

  async zrangeByScore(key: string, min: number, max: number): Promise<Array<{ member: string; score: number }>> {
    assertScore(min, 'min', true);
    assertScore(max, 'max', true);
    const zset = this.read(key, 'zset');
    if (!zset) return [];
    return [...zset.members]
      .filter(([, score]) => score >= min && score <= max)
      .map(([member, score]) => ({ member, score }))
      .sort((a, b) => a.score - b.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0));
  }

  async zrem(key: string, member: string): Promise<boolean> {
    const zset = this.read(key, 'zset');
    if (!zset) return false;
    const removed = zset.members.delete(member);
    if (zset.members.size === 0) this.entries.delete(key);
    return removed;
  }

  async zremRangeByScore(key: string, min: number, max: number): Promise<number> {
    assertScore(min, 'min', true);
    assertScore(max, 'max', true);
    return this.removeRange(key, min, max);
  }

  async ping(): Promise<void> {}

  private removeRange(key: string, min: number, max: number): number {
    const zset = this.read(key, 'zset');
    if (!zset) return 0;
    let removed = 0;
    for (const [member, score] of zset.members) {
      if (score >= min && score <= max) {
        zset.members.delete(member);
        removed++;
      }
    }
    if (zset.members.size === 0) this.entries.delete(key);
    return removed;
  }

  private writeZset(key: string, member: string, score: number, keyTtlMs: number | undefined): void {
    let entry = this.live(key);
    if (!entry) {
      entry = { value: { type: 'zset', members: new Map() } };
      this.entries.set(key, entry);
    }
    this.typed(key, entry, 'zset').members.set(member, score);
    if (keyTtlMs !== undefined) entry.expiresAt = this.clock.now() + keyTtlMs;
  }

  private expiry(ttlMs: number | undefined): { expiresAt?: number } {
    return ttlMs === undefined ? {} : { expiresAt: this.clock.now() + ttlMs };
  }

  /** The entry if it exists and has not expired (an expired one is deleted on the way). */
  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private read<T extends Value['type']>(key: string, type: T): Extract<Value, { type: T }> | undefined {
    const entry = this.live(key);
    return entry ? this.typed(key, entry, type) : undefined;
  }

  private typed<T extends Value['type']>(key: string, entry: Entry, type: T): Extract<Value, { type: T }> {
    if (entry.value.type !== type) {
      throw new CacheError('WRONGTYPE', `${key} holds a ${entry.value.type}, not a ${type}`, false);
    }
    return entry.value as Extract<Value, { type: T }>;
  }

  private sweep(force = false): void {
    const now = this.clock.now();
    if (!force && now - this.lastSweepAt < this.sweepIntervalMs) return;
    this.lastSweepAt = now;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.entries.delete(key);
    }
  }
}
