/**
 * Bounded FIFO for inbound frames while the VAD works asynchronously. When full, the oldest frame goes:
 * late audio is worth less than current audio, and memory stays bounded. `push` returns how many were dropped.
 */
export function createInboundQueue<T>(capacity: number) {
  const items: (T | undefined)[] = new Array(capacity);
  let head = 0;
  let size = 0;
  return {
    draining: false,
    push(item: T): number {
      let dropped = 0;
      if (size === capacity) {
        items[head] = undefined;
        head = (head + 1) % capacity;
        size--;
        dropped = 1;
      }
      items[(head + size) % capacity] = item;
      size++;
      return dropped;
    },
    shift(): T | undefined {
      if (size === 0) return undefined;
      const item = items[head];
      items[head] = undefined;
      head = (head + 1) % capacity;
      size--;
      return item;
    },
    get size() {
      return size;
    },
  };
}
