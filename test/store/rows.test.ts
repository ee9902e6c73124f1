import { describe, expect, it } from 'vitest';
import { isUuid, listParam, timestampParam, toBoolean, toDate, toNumber, toNumberOrUndefined, toStringArray } from '../../shared/store/rows';
import { base64ToBytes, bytesToBase64, bytesToBase64Url, randomToken, sha256Hex } from '../../shared/store/tokens';

// The two SQL clients return some columns in different shapes; the stores must map both to the same values.
describe('row normalisation', () => {
  it('reads a timestamp as Date or in PostgreSQL text form', () => {
    const expected = new Date('2026-01-02T03:04:05.678Z');
    expect(toDate(expected)).toBe(expected);
    expect(toDate('2026-01-02 03:04:05.678+00')).toEqual(expected);
    expect(toDate('2026-01-02 05:04:05.678+02')).toEqual(expected);
    expect(toDate('2026-01-02T03:04:05.678Z')).toEqual(expected);
    expect(() => toDate('not a date', 'created_at')).toThrow(/created_at is not a timestamp/);
  });

  it('reads int8/numeric as string, bigint or number', () => {
    expect(toNumber('42')).toBe(42);
    expect(toNumber(42n)).toBe(42);
    expect(toNumber(4.5)).toBe(4.5);
    expect(toNumberOrUndefined(null)).toBeUndefined();
    expect(() => toNumber('')).toThrow(/ROW_TYPE/);
  });

  it('reads booleans, json arrays, and validates ids', () => {
    expect([toBoolean(true), toBoolean('t'), toBoolean(false), toBoolean('f')]).toEqual([true, true, false, false]);
    expect(toStringArray(['a', 'b'])).toEqual(['a', 'b']);
    expect(toStringArray(null)).toEqual([]);
    expect(isUuid('6f1c1c7e-8a4b-4c8e-9a1d-2b3c4d5e6f70')).toBe(true);
    expect(isUuid("6f1c1c7e-8a4b-4c8e-9a1d-2b3c4d5e6f70' OR 1=1")).toBe(false);
    expect(listParam(['pending', 'claimed'])).toBe('pending,claimed');
    expect(listParam(undefined)).toBeNull();
    expect(timestampParam(0)).toBe('1970-01-01T00:00:00.000Z');
    expect(timestampParam(undefined)).toBeNull();
  });

  it('tokens: 256-bit base64url, SHA-256 hex, base64 round trip', async () => {
    expect(randomToken('vr_sk_')).toMatch(/^vr_sk_[A-Za-z0-9_-]{43}$/);
    expect(randomToken()).not.toBe(randomToken());
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const bytes = new Uint8Array([0, 251, 255, 62, 63, 128]);
    expect(base64ToBytes(bytesToBase64(bytes))).toEqual(bytes);
    expect(bytesToBase64Url(new Uint8Array([251, 255]))).toBe('-_8');
  });
});
