import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { bytesFromPcm16, pcm16FromBytes } from '../../shared/talk/audio-bytes';
import { AssistantTalkRequestSchema } from '../../shared/talk/gen/talk_api_pb';

const SAMPLES = Int16Array.from([0, 1, -1, 32767, -32768, 258, -2, 12345]);

describe('pcm16FromBytes', () => {
  it('reads the audio of a decoded UserMessage whose bytes field starts at an odd offset', () => {
    // The offset follows from the tags and lengths before the field: here a one-character id puts it at 7.
    const wire = toBinary(
      AssistantTalkRequestSchema,
      create(AssistantTalkRequestSchema, { request: { case: 'message', value: { id: 'x', content: { case: 'audio', value: bytesFromPcm16(SAMPLES) } } } }),
    );
    const decoded = fromBinary(AssistantTalkRequestSchema, wire);
    const audio = decoded.request.case === 'message' && decoded.request.value.content.case === 'audio' ? decoded.request.value.content.value : undefined;
    expect(audio).toBeDefined();
    // The premise: a view into `wire` at an odd offset, on which `new Int16Array(...)` would throw.
    expect(audio!.buffer).toBe(wire.buffer);
    expect(audio!.byteOffset).toBe(7);
    expect(() => new Int16Array(audio!.buffer, audio!.byteOffset, audio!.byteLength / 2)).toThrow(RangeError);

    const samples = pcm16FromBytes(audio!);
    expect(Array.from(samples)).toEqual(Array.from(SAMPLES));
    expect(samples.buffer).not.toBe(wire.buffer); // copied
  });

  it('returns a view without copying when the offset is even', () => {
    const frame = new Uint8Array(2 + SAMPLES.byteLength);
    frame.set(bytesFromPcm16(SAMPLES), 2);
    const bytes = frame.subarray(2);
    const samples = pcm16FromBytes(bytes);
    expect(Array.from(samples)).toEqual(Array.from(SAMPLES));
    expect(samples.buffer).toBe(frame.buffer);
    expect(samples.byteOffset).toBe(2);
  });

  it('reads little-endian byte pairs', () => {
    expect(Array.from(pcm16FromBytes(Uint8Array.from([0x02, 0x01, 0xfe, 0xff, 0x00, 0x80])))).toEqual([258, -2, -32768]);
    expect(Array.from(pcm16FromBytes(Uint8Array.from([0x99, 0x02, 0x01]).subarray(1)))).toEqual([258]); // odd offset
    expect(pcm16FromBytes(new Uint8Array(0))).toHaveLength(0);
  });

  it('refuses a frame with half a sample', () => {
    expect(() => pcm16FromBytes(new Uint8Array(641))).toThrow(/whole 2-byte samples; this frame has 641 bytes/);
  });
});

describe('bytesFromPcm16', () => {
  it('writes little-endian byte pairs of exactly the samples given (also a subarray)', () => {
    expect(Array.from(bytesFromPcm16(Int16Array.from([258, -2, -32768])))).toEqual([0x02, 0x01, 0xfe, 0xff, 0x00, 0x80]);
    expect(Array.from(bytesFromPcm16(SAMPLES.subarray(5, 7)))).toEqual([0x02, 0x01, 0xfe, 0xff]);
  });
});
