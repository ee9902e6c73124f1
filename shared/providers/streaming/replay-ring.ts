/**
 * The audio an STT connection has been sent but not yet turned into a final: a preallocated ring of bytes
 * addressed by absolute stream positions (bytes since the session began), so a new connection can be fed
 * what the dropped one never answered. Appending copies into the ring and allocates nothing.
 */
export interface ReplayRing {
  readonly capacityBytes: number;
  /** Absolute position of the oldest byte kept. */
  readonly start: number;
  /** Absolute position just after the newest byte. */
  readonly end: number;
  /** Bytes evicted unanswered because the ring was full. */
  readonly droppedBytes: number;
  append(bytes: Uint8Array): void;
  /** Forget everything before `position` (clamped to what is kept). */
  dropUntil(position: number): void;
  /** Visit the kept bytes in order, in views of at most `chunkBytes` (valid only during the call). */
  forEach(chunkBytes: number, visit: (chunk: Uint8Array) => void): void;
  /**
   * Copy the kept part of [position, position + length) into `target` from `offset`, across the wrap point;
   * returns how many bytes were copied (fewer when part of the range is not kept).
   */
  copyOut(position: number, length: number, target: Uint8Array, offset?: number): number;
}

export function createReplayRing(capacityBytes: number): ReplayRing {
  // Even capacity keeps PCM16 samples whole at the wrap point.
  const capacity = Math.max(0, Math.floor(capacityBytes / 2) * 2);
  const buffer = new Uint8Array(capacity);
  let start = 0;
  let end = 0;
  let dropped = 0;

  return {
    capacityBytes: capacity,
    get start() {
      return start;
    },
    get end() {
      return end;
    },
    get droppedBytes() {
      return dropped;
    },
    append(bytes) {
      const length = bytes.byteLength;
      end += length;
      if (capacity === 0) {
        start = end;
        return;
      }
      // Only the newest `capacity` bytes can survive.
      const kept = length > capacity ? bytes.subarray(length - capacity) : bytes;
      let at = (end - kept.byteLength) % capacity;
      let offset = 0;
      while (offset < kept.byteLength) {
        const n = Math.min(kept.byteLength - offset, capacity - at);
        buffer.set(kept.subarray(offset, offset + n), at);
        offset += n;
        at = 0;
      }
      if (end - start > capacity) {
        dropped += end - capacity - start;
        start = end - capacity;
      }
    },
    dropUntil(position) {
      start = Math.min(end, Math.max(start, position));
    },
    forEach(chunkBytes, visit) {
      if (capacity === 0) return;
      let position = start;
      while (position < end) {
        const at = position % capacity;
        const n = Math.min(chunkBytes, end - position, capacity - at);
        visit(buffer.subarray(at, at + n));
        position += n;
      }
    },
    copyOut(position, length, target, offset = 0) {
      if (capacity === 0) return 0;
      const from = Math.max(start, position);
      const to = Math.min(end, position + length);
      let written = offset;
      for (let p = from; p < to; ) {
        const at = p % capacity;
        const n = Math.min(to - p, capacity - at);
        target.set(buffer.subarray(at, at + n), written);
        written += n;
        p += n;
      }
      return Math.max(0, to - from);
    },
  };
}
