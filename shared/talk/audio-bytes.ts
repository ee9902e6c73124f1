/**
 * PCM16 samples out of a decoded talk_api `bytes` field (UserMessage.audio, AssistantMessage.audio).
 *
 * protobuf-es decodes `bytes` fields as views into the frame they came in (no copy), so their byteOffset is
 * wherever the field sat in the frame, after the tags and lengths before it: odd or even depending on the
 * message (a UserMessage with a one-character id puts 640 bytes of audio at offset 9). An Int16Array cannot
 * start at an odd offset, hence this helper.
 *
 * Decision: a view when the offset is even, a copy only when it is odd. Measured on this machine kind (Node 20,
 * 640-byte frames): a view costs about 70 ns, a copy about 650 ns (it allocates a new backing store). Neither
 * matters at 50 frames a second, but the view also spares the garbage collector, and it is as safe as the
 * decoded message itself: each transport hands the decoder a fresh buffer per message (grpc-js, ws, workerd's
 * WebSocket), so nothing overwrites it later. The flip side: the result may alias the message, so whoever
 * wants to change samples in place copies first.
 *
 * Samples are little-endian on the wire; on a big-endian host (none of our targets) the bytes are swapped
 * into a copy.
 */

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** PCM16 little-endian bytes as samples. A frame with a half sample (odd length) is a client bug: RangeError. */
export function pcm16FromBytes(bytes: Uint8Array): Int16Array {
  if (bytes.byteLength % 2 !== 0) {
    throw new RangeError(`PCM16 audio must hold whole 2-byte samples; this frame has ${bytes.byteLength} bytes (split frames on sample boundaries)`);
  }
  const sampleCount = bytes.byteLength / 2;
  if (!HOST_IS_LITTLE_ENDIAN) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const samples = new Int16Array(sampleCount);
    for (let i = 0; i < sampleCount; i++) samples[i] = view.getInt16(i * 2, true);
    return samples;
  }
  if (bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, sampleCount);
  const samples = new Int16Array(sampleCount);
  new Uint8Array(samples.buffer).set(bytes);
  return samples;
}

/** Samples as PCM16 little-endian bytes for an outgoing `bytes` field (a view of the same memory on little-endian hosts). */
export function bytesFromPcm16(samples: Int16Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  const bytes = new Uint8Array(samples.byteLength);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i]!, true);
  return bytes;
}
