/**
 * Mono WAV (RIFF/WAVE) files in the pipeline's encodings: PCM16 (format 1), A-law (6), μ-law (7).
 * Used for prompts, hold audio, recordings and test fixtures, not on the per-frame path.
 */
import type { AudioEncoding, AudioFormat } from './format';

export type WavErrorCode =
  | 'WAV_NOT_RIFF' // not a RIFF/WAVE file at all
  | 'WAV_UNSUPPORTED' // a WAV we do not read: other codec, channels or sample size
  | 'WAV_MALFORMED' // a WAV whose header contradicts itself
  | 'WAV_MISSING_CHUNK' // no `fmt ` or no `data` chunk
  | 'WAV_TRUNCATED'; // a chunk claims more bytes than the file has

export class WavError extends Error {
  override readonly name = 'WavError';
  constructor(
    readonly code: WavErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface DecodedWav {
  readonly format: AudioFormat;
  /** The samples as stored (PCM16 little-endian); a view into the decoded file's bytes, not a copy. */
  readonly data: Uint8Array;
}

const FORMAT_CODE: Record<AudioEncoding, number> = { pcm16: 1, alaw: 6, mulaw: 7 };
const ENCODING_OF_CODE: Partial<Record<number, AudioEncoding>> = { 1: 'pcm16', 6: 'alaw', 7: 'mulaw' };
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** Bytes 2..15 of every KSDATAFORMAT_SUBTYPE GUID that wraps a plain format code. */
const SUBTYPE_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];
/** Streaming writers that cannot seek back leave this as the data size: "until the end of the file". */
const UNKNOWN_SIZE = 0xffffffff;

function fourCc(view: DataView, offset: number): string {
  return String.fromCharCode(view.getUint8(offset), view.getUint8(offset + 1), view.getUint8(offset + 2), view.getUint8(offset + 3));
}

function writeFourCc(view: DataView, offset: number, text: string): void {
  for (let i = 0; i < 4; i++) view.setUint8(offset + i, text.charCodeAt(i));
}

/**
 * Writes a mono WAV. G.711 files get the 18-byte `fmt ` and the `fact` chunk the spec asks of non-PCM
 * formats; an odd-length data chunk gets its RIFF pad byte.
 */
export function encodeWav(format: AudioFormat, data: Uint8Array): Uint8Array {
  const pcm = format.encoding === 'pcm16';
  const sampleBytes = pcm ? 2 : 1;
  if (data.length % sampleBytes !== 0) {
    throw new WavError('WAV_MALFORMED', `PCM16 data must hold whole samples; got ${data.length} bytes`);
  }
  if (!Number.isInteger(format.sampleRateHz) || format.sampleRateHz <= 0) {
    throw new WavError('WAV_MALFORMED', `sample rate ${format.sampleRateHz} Hz is not a positive integer`);
  }
  const fmtSize = pcm ? 16 : 18;
  const factSize = pcm ? 0 : 12;
  const pad = data.length & 1;
  const dataOffset = 12 + 8 + fmtSize + factSize + 8;
  const bytes = new Uint8Array(dataOffset + data.length + pad);
  const view = new DataView(bytes.buffer);
  writeFourCc(view, 0, 'RIFF');
  view.setUint32(4, bytes.length - 8, true);
  writeFourCc(view, 8, 'WAVE');
  writeFourCc(view, 12, 'fmt ');
  view.setUint32(16, fmtSize, true);
  view.setUint16(20, FORMAT_CODE[format.encoding], true);
  view.setUint16(22, 1, true); // channels
  view.setUint32(24, format.sampleRateHz, true);
  view.setUint32(28, format.sampleRateHz * sampleBytes, true); // byte rate
  view.setUint16(32, sampleBytes, true); // block align
  view.setUint16(34, sampleBytes * 8, true); // bits per sample
  let offset = 36;
  if (!pcm) {
    view.setUint16(offset, 0, true); // cbSize: no extra format bytes
    writeFourCc(view, offset + 2, 'fact');
    view.setUint32(offset + 6, 4, true);
    view.setUint32(offset + 10, data.length, true); // sample count
    offset += 14;
  }
  writeFourCc(view, offset, 'data');
  view.setUint32(offset + 4, data.length, true);
  bytes.set(data, dataOffset);
  return bytes;
}

interface FmtChunk {
  readonly formatCode: number;
  readonly channels: number;
  readonly sampleRateHz: number;
  readonly blockAlign: number;
  readonly bitsPerSample: number;
}

function parseFmt(view: DataView, offset: number, size: number): FmtChunk | WavError {
  if (size < 16) return new WavError('WAV_MALFORMED', `the fmt chunk has ${size} bytes, fewer than the 16 every WAV needs`);
  let formatCode = view.getUint16(offset, true);
  if (formatCode === WAVE_FORMAT_EXTENSIBLE) {
    // cbSize (2) + valid bits (2) + channel mask (4) + 16-byte subtype GUID whose first 2 bytes are the code.
    if (size < 40) return new WavError('WAV_MALFORMED', `a WAVE_FORMAT_EXTENSIBLE fmt chunk needs 40 bytes, has ${size}`);
    const guid = offset + 24;
    if (SUBTYPE_GUID_TAIL.some((byte, i) => view.getUint8(guid + 2 + i) !== byte)) {
      return new WavError('WAV_UNSUPPORTED', 'the WAVE_FORMAT_EXTENSIBLE subtype is not a standard format; convert to PCM16, A-law or μ-law');
    }
    formatCode = view.getUint16(guid, true);
  }
  return {
    formatCode,
    channels: view.getUint16(offset + 2, true),
    sampleRateHz: view.getUint32(offset + 4, true),
    blockAlign: view.getUint16(offset + 12, true),
    bitsPerSample: view.getUint16(offset + 14, true),
  };
}

function formatOf(fmt: FmtChunk): AudioFormat | WavError {
  const encoding = ENCODING_OF_CODE[fmt.formatCode];
  if (!encoding) {
    return new WavError('WAV_UNSUPPORTED', `WAV format code ${fmt.formatCode} is not supported; use PCM16 (1), A-law (6) or μ-law (7)`);
  }
  if (fmt.channels !== 1) return new WavError('WAV_UNSUPPORTED', `the file has ${fmt.channels} channels; only mono is supported`);
  const bits = encoding === 'pcm16' ? 16 : 8;
  if (fmt.bitsPerSample !== bits) {
    return new WavError('WAV_UNSUPPORTED', `${encoding} WAV with ${fmt.bitsPerSample} bits per sample; expected ${bits}`);
  }
  if (fmt.blockAlign !== bits / 8) return new WavError('WAV_MALFORMED', `block align ${fmt.blockAlign} does not fit mono ${bits}-bit samples`);
  if (fmt.sampleRateHz === 0) return new WavError('WAV_MALFORMED', 'the sample rate is 0 Hz');
  return { encoding, sampleRateHz: fmt.sampleRateHz };
}

/** Reads a mono WAV; unknown chunks (LIST, fact, cue, ...) are skipped. Returns a WavError rather than throwing. */
export function decodeWav(bytes: Uint8Array): DecodedWav | WavError {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 4 && bytes.length < 12 && fourCc(view, 0) === 'RIFF') {
    return new WavError('WAV_TRUNCATED', `the file ends after ${bytes.length} bytes, inside the RIFF header`);
  }
  if (bytes.length < 12 || fourCc(view, 0) !== 'RIFF' || fourCc(view, 8) !== 'WAVE') {
    const kind = bytes.length >= 4 && fourCc(view, 0) === 'RIFX' ? ' (big-endian RIFX is not supported)' : '';
    return new WavError('WAV_NOT_RIFF', `the bytes are not a RIFF/WAVE file${kind}`);
  }
  let fmt: FmtChunk | undefined;
  let dataStart = -1;
  let dataSize = 0;
  // The RIFF size field is often wrong in the wild, so walk the chunks up to the real end of the bytes.
  let offset = 12;
  while (offset + 8 <= bytes.length && (fmt === undefined || dataStart < 0)) {
    const id = fourCc(view, offset);
    let size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'data' && size === UNKNOWN_SIZE) size = bytes.length - body;
    if (body + size > bytes.length) {
      return new WavError('WAV_TRUNCATED', `the '${id}' chunk claims ${size} bytes but only ${bytes.length - body} follow`);
    }
    if (id === 'fmt ') {
      const parsed = parseFmt(view, body, size);
      if (parsed instanceof WavError) return parsed;
      fmt = parsed;
    } else if (id === 'data') {
      dataStart = body;
      dataSize = size;
    }
    offset = body + size + (size & 1); // chunks are word-aligned
  }
  if (!fmt) return new WavError('WAV_MISSING_CHUNK', "the file has no 'fmt ' chunk");
  if (dataStart < 0) return new WavError('WAV_MISSING_CHUNK', "the file has no 'data' chunk");
  const format = formatOf(fmt);
  if (format instanceof WavError) return format;
  if (format.encoding === 'pcm16' && (dataSize & 1) !== 0) {
    return new WavError('WAV_TRUNCATED', `the PCM16 data ends inside a sample (${dataSize} bytes)`);
  }
  return { format, data: bytes.subarray(dataStart, dataStart + dataSize) };
}
