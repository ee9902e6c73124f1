import { ConfigError } from '../contracts/errors';
import { StoreError } from './errors';
import { bytesToHex } from './tokens';

/**
 * Authenticated encryption for secrets at rest: AES-256-GCM (Web Crypto), a fresh random 12-byte IV per seal.
 *
 * Key derivation: SECRET_KEY (any string of at least 16 characters, UTF-8) is the input keying material of
 * HKDF-SHA256 with a fixed salt; two independent outputs come from two `info` labels:
 *   - "voice-runtime credentials aes-256-gcm v1" → the 256-bit AES key (non-extractable);
 *   - "voice-runtime credentials key-id v1"      → 8 bytes, hex: the `keyId` stored next to each ciphertext.
 * The key id names the key that sealed a value (a wrong SECRET_KEY is reported as such instead of as
 * corruption) and reveals nothing about the AES key. HKDF rather than a bare SHA-256 so the same SECRET_KEY
 * can feed other purposes later with independent keys.
 *
 * `aad` (additional authenticated data) binds a ciphertext to where it belongs (the credential row), so a
 * ciphertext copied into another row does not open.
 */

export interface Sealed {
  readonly ciphertext: Uint8Array;
  readonly iv: Uint8Array;
  readonly keyId: string;
}

export interface SecretBox {
  readonly keyId: string;
  seal(plaintext: string, aad: string): Promise<Sealed>;
  /** `what` names the secret in errors ("credential \"main\" of project ..."). */
  open(sealed: Sealed, aad: string, what?: string): Promise<string>;
}

export const MIN_SECRET_KEY_LENGTH = 16;
const SALT = new TextEncoder().encode('voice-runtime/secret-box');
const AES_INFO = new TextEncoder().encode('voice-runtime credentials aes-256-gcm v1');
const KEY_ID_INFO = new TextEncoder().encode('voice-runtime credentials key-id v1');

export async function createSecretBox(secretKey: string): Promise<SecretBox> {
  if (typeof secretKey !== 'string' || secretKey.length < MIN_SECRET_KEY_LENGTH) {
    throw new ConfigError(
      'SECRET_KEY_INVALID',
      `SECRET_KEY must be at least ${MIN_SECRET_KEY_LENGTH} characters (e.g. 32 random bytes, base64url); it encrypts the stored provider credentials`,
    );
  }
  const subtle = globalThis.crypto.subtle;
  const material = await subtle.importKey('raw', new TextEncoder().encode(secretKey), 'HKDF', false, ['deriveKey', 'deriveBits']);
  const key = await subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: SALT, info: AES_INFO },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
  const keyId = bytesToHex(new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: SALT, info: KEY_ID_INFO }, material, 64)));
  const encoder = new TextEncoder();

  return {
    keyId,
    async seal(plaintext, aad) {
      const iv = new Uint8Array(12);
      globalThis.crypto.getRandomValues(iv);
      const ciphertext = await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: encoder.encode(aad) }, key, encoder.encode(plaintext));
      return { ciphertext: new Uint8Array(ciphertext), iv, keyId };
    },
    async open(sealed, aad, what = 'a sealed secret') {
      if (sealed.keyId !== keyId) {
        throw new StoreError(
          'CREDENTIALS_KEY_MISMATCH',
          `${what} was sealed with key ${sealed.keyId}, the configured SECRET_KEY is ${keyId}. ` +
            'Set SECRET_KEY back to the key it was sealed with, or store the credential again.',
        );
      }
      try {
        const plaintext = await subtle.decrypt(
          { name: 'AES-GCM', iv: sealed.iv as Uint8Array<ArrayBuffer>, additionalData: encoder.encode(aad) },
          key,
          sealed.ciphertext as Uint8Array<ArrayBuffer>,
        );
        return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
      } catch (error) {
        throw new StoreError(
          'CREDENTIALS_CORRUPT',
          `${what} does not decrypt with key ${keyId} although it names that key: it was altered or moved to another row. Store the credential again.`,
          { cause: error },
        );
      }
    },
  };
}
