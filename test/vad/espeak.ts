import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ResamplerFactory } from '../../shared/audio/resampler';

const run = promisify(execFile);

/** Whether the `espeak-ng` program (Debian package espeak-ng; GPL, so only ever spawned) is on PATH. */
export async function espeakAvailable(): Promise<boolean> {
  try {
    await run('espeak-ng', ['--version']);
    return true;
  } catch {
    return false;
  }
}

/**
 * Under CI a missing tool must fail the run (a skipped test proves nothing); locally it skips with the reason.
 * Returns the reason to skip, or undefined when the tool is there.
 */
export async function requireEspeak(): Promise<string | undefined> {
  if (await espeakAvailable()) return undefined;
  const reason = 'espeak-ng is not installed (apt-get install -y espeak-ng)';
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}; .ci/run must install it`);
  console.warn(`skipping: ${reason}`);
  return reason;
}

/** Speaks `text` with espeak-ng (22,050 Hz PCM16 WAV) and resamples it to 16 kHz with our resampler. */
export async function speak16k(text: string, resamplers: ResamplerFactory): Promise<Int16Array> {
  const dir = await mkdtemp(join(tmpdir(), 'espeak-'));
  try {
    const file = join(dir, 'speech.wav');
    await run('espeak-ng', ['-v', 'en-us', '-w', file, text]);
    const { samples, sampleRateHz } = parsePcm16Wav(await readFile(file));
    const resampler = resamplers.create(sampleRateHz, 16_000);
    const out = resampler.process(samples);
    resampler.destroy();
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function parsePcm16Wav(bytes: Uint8Array): { samples: Int16Array; sampleRateHz: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('espeak-ng did not write a RIFF/WAVE file');
  let sampleRateHz = 0;
  for (let offset = 12; offset + 8 <= bytes.length; ) {
    const size = view.getUint32(offset + 4, true);
    if (tag(offset) === 'fmt ') {
      if (view.getUint16(offset + 8, true) !== 1 || view.getUint16(offset + 10, true) !== 1 || view.getUint16(offset + 22, true) !== 16) {
        throw new Error('expected mono PCM16 from espeak-ng');
      }
      sampleRateHz = view.getUint32(offset + 12, true);
    } else if (tag(offset) === 'data') {
      const end = Math.min(bytes.length, offset + 8 + size); // streamed WAVs may carry a bogus size
      const samples = new Int16Array(bytes.slice(offset + 8, end - ((end - offset - 8) & 1)).buffer);
      return { samples, sampleRateHz };
    }
    offset += 8 + size + (size & 1);
  }
  throw new Error('no data chunk in the espeak-ng WAV');
}
