/**
 * STT provider `local`: CMU PocketSphinx (Debian `pocketsphinx` + `pocketsphinx-en-us`, BSD) as one child
 * process per session. A development engine: offline and free, finals only, low accuracy.
 *
 * Wire facts of `pocketsphinx_continuous -infile /dev/stdin` (0.8+5prealpha, checked here):
 * - It must read a real pipe: opening /dev/stdin fails on the socketpair Node gives a child's stdio, so the
 *   audio goes through `sh -c 'cat | exec pocketsphinx_continuous ...'` (run in its own process group, so
 *   close() can kill cat, sh and the recogniser together). A recogniser that dies is noticed at the next
 *   frame written (cat gets EPIPE, then the shell exits with the recogniser's status): within 20 ms on a call.
 * - It prints one line per utterance on stdout (lower-case words, no confidence) once its VAD has seen
 *   ~0.5 s of silence, and the last utterance when its input ends; everything else goes to stderr.
 * - It has no flush command. finalize() therefore writes ~0.9 s of digital silence: the VAD ends the
 *   utterance and its final follows at once (faster than waiting for the caller's own silence).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { PIPELINE_FORMAT, sameFormat } from '../../../shared/audio/format';
import { ProviderError } from '../../../shared/contracts/errors';
import type { SpeechToText, SttCapabilities, SttEvent, SttSession, SttSessionOptions } from '../../../shared/contracts/stt';
import type { Registrable } from '../../../shared/providers/registry';

export const POCKETSPHINX_COMMAND = 'pocketsphinx_continuous';
export const POCKETSPHINX_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';
export const POCKETSPHINX_PACKAGES = 'pocketsphinx pocketsphinx-en-us';

/** PocketSphinx reports no confidence on this path; the contract needs a number, so finals carry this. */
export const UNKNOWN_CONFIDENCE = 0.5;
/** Digital silence written by finalize(): 7 × the recogniser's 2,048-sample read, > its 0.5 s end-of-speech. */
const FINALIZE_SILENCE_BYTES = 7 * 2_048 * 2;
const STDERR_TAIL_CHARS = 4_000;

/** Finals only; finalize() is real (silence injection, see above); no word timings from this output. */
export const LOCAL_STT_CAPABILITIES: SttCapabilities = Object.freeze({ interimResults: false, finalize: true, wordTimings: false, endOfTurn: false, edgeCapable: false });

export interface LocalSttOptions {
  /** The recogniser program (default pocketsphinx_continuous on PATH). */
  readonly command?: string;
  /** Directory with en-us/ (acoustic model), en-us.lm.bin and cmudict-en-us.dict. */
  readonly modelDir?: string;
  /** Audio allowed to wait in the pipe before frames are dropped (counted) instead of buffered (default 2 s). */
  readonly maxBufferedMs?: number;
  /** close() waits this long for the last final, then kills the process group (default 3 s). */
  readonly closeTimeoutMs?: number;
}

export interface LocalSttSession extends SttSession {
  /** Process group of the session's programs (sh, cat, the recogniser). */
  readonly pid: number;
  /** Frames dropped because the recogniser fell behind (back-pressure), never buffered without bound. */
  readonly droppedFrames: number;
}

export interface LocalStt extends SpeechToText, Registrable {
  open(options: SttSessionOptions, onEvent: (event: SttEvent) => void): Promise<LocalSttSession>;
}

function modelFiles(modelDir: string) {
  return { hmm: join(modelDir, 'en-us'), lm: join(modelDir, 'en-us.lm.bin'), dict: join(modelDir, 'cmudict-en-us.dict') };
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(command: string): Promise<string | undefined> {
  if (command.includes('/')) return (await isExecutable(command)) ? command : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && (await isExecutable(join(dir, command)))) return join(dir, command);
  }
  return undefined;
}

/** Whether the recogniser and its model are installed (for `npm start`'s warning and open()'s error). */
export async function isLocalSttAvailable(options: Pick<LocalSttOptions, 'command' | 'modelDir'> = {}): Promise<{ ok: true } | { ok: false; reason: string }> {
  const command = options.command ?? POCKETSPHINX_COMMAND;
  if (!(await findOnPath(command))) return { ok: false, reason: `${command} is not installed (Debian packages: ${POCKETSPHINX_PACKAGES})` };
  const files = modelFiles(options.modelDir ?? POCKETSPHINX_MODEL_DIR);
  for (const path of [join(files.hmm, 'mdef'), files.lm, files.dict]) {
    try {
      await access(path, constants.R_OK);
    } catch {
      return { ok: false, reason: `the PocketSphinx model file ${path} is missing (Debian package pocketsphinx-en-us)` };
    }
  }
  return { ok: true };
}

export function createLocalStt(options: LocalSttOptions = {}): LocalStt {
  const command = options.command ?? POCKETSPHINX_COMMAND;
  const modelDir = options.modelDir ?? POCKETSPHINX_MODEL_DIR;
  const maxBufferedBytes = Math.round(((options.maxBufferedMs ?? 2_000) * PIPELINE_FORMAT.sampleRateHz * 2) / 1000);
  const closeTimeoutMs = options.closeTimeoutMs ?? 3_000;

  async function open(session: SttSessionOptions, onEvent: (event: SttEvent) => void): Promise<LocalSttSession> {
    if (!/^en\b/i.test(session.language)) {
      throw new ProviderError('LOCAL_STT_LANGUAGE', `the local recogniser only knows English (en-US); language "${session.language}" needs a cloud STT`, false, 'bad-request');
    }
    const available = await isLocalSttAvailable({ command, modelDir });
    if (!available.ok) {
      throw new ProviderError('LOCAL_STT_UNAVAILABLE', `${available.reason}; install it with "apt-get install -y ${POCKETSPHINX_PACKAGES}" or configure a cloud STT`, false, 'unavailable');
    }
    const files = modelFiles(modelDir);
    const args = ['-infile', '/dev/stdin', '-hmm', files.hmm, '-lm', files.lm, '-dict', files.dict, '-samprate', String(PIPELINE_FORMAT.sampleRateHz)];
    const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn('sh', ['-c', 'cat | exec "$0" "$@"', command, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // its own process group: close() kills sh, cat and the recogniser at once
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => reject(new ProviderError('LOCAL_STT_UNAVAILABLE', `cannot start ${command} through sh: ${error.message}`, false, 'unavailable', { cause: error })));
    });
    const pid = child.pid!;

    let stderrTail = '';
    let droppedFrames = 0;
    let closing = false;
    let finished = false;
    let exitInfo = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    child.stdin.on('error', () => {}); // EPIPE after the recogniser died: reported once by 'close' below
    createInterface({ input: child.stdout }).on('line', (line) => {
      const text = line.trim();
      if (text && !finished) onEvent({ type: 'final', text, confidence: UNKNOWN_CONFIDENCE });
    });
    child.once('exit', (code, signal) => (exitInfo = signal ? `signal ${signal}` : `exit code ${code}`));
    const closed = new Promise<void>((resolve) => {
      // 'close' comes after stdout ended, so every final line has been emitted by then.
      child.once('close', () => {
        const wasClosing = closing;
        finished = true;
        session.signal.removeEventListener('abort', onAbort);
        resolve();
        if (!wasClosing) {
          const lastLines = stderrTail.trim().split('\n').slice(-3).join(' | ');
          onEvent({
            type: 'error',
            error: new ProviderError('LOCAL_STT_EXITED', `${command} stopped mid-session (${exitInfo || 'unknown'})${lastLines ? `: ${lastLines}` : ''}`, true, 'unavailable'),
          });
        }
      });
    });

    function killGroup(): void {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }

    async function close(): Promise<void> {
      if (!closing) {
        closing = true;
        child.stdin.end(); // end of input: the recogniser prints the last utterance and exits
        const timer = setTimeout(killGroup, closeTimeoutMs);
        await closed;
        clearTimeout(timer);
        killGroup(); // a safety net: sh reaped cat and the recogniser before exiting, so normally nothing is left
      }
      await closed;
    }

    const onAbort = () => void close();
    if (session.signal.aborted) await close();
    else session.signal.addEventListener('abort', onAbort, { once: true });

    function send(bytes: Uint8Array): boolean {
      if (closing || finished) return false;
      if (child.stdin.writableLength + bytes.length > maxBufferedBytes) return false;
      child.stdin.write(Buffer.from(bytes)); // a copy: the pipe may hold it after write() returns
      return true;
    }

    return {
      pid,
      get droppedFrames() {
        return droppedFrames;
      },
      write(frame) {
        if (!sameFormat(frame.format, PIPELINE_FORMAT)) {
          throw new ProviderError('LOCAL_STT_FORMAT', `expected PCM16 16 kHz frames, got ${frame.format.encoding}/${frame.format.sampleRateHz} Hz`, false, 'bad-request');
        }
        if (!send(frame.data) && !closing && !finished) droppedFrames++;
      },
      finalize() {
        send(new Uint8Array(FINALIZE_SILENCE_BYTES));
      },
      close,
    };
  }

  return {
    id: 'local',
    capabilities: LOCAL_STT_CAPABILITIES,
    open,
  };
}
