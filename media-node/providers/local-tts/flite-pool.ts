/**
 * A small pool of Flite worker threads with one shared FIFO of synthesis jobs. A worker that dies (crash,
 * timeout) fails only its own job and is replaced on demand; its temp directory is removed by the pool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ProviderError } from '../../../shared/contracts/errors';
import type { FliteRequest } from './flite-engine.mjs';
import type { SynthesizeMessage, WorkerReply } from './flite-messages';

export interface FliteJobHandle {
  /** The WAV file Flite wrote for the piece; rejects with a ProviderError. */
  readonly wav: Promise<Uint8Array>;
  /** Drops the job if it is still queued (a running synthesis finishes and its result is discarded). */
  cancel(): void;
}

export interface FlitePoolOptions {
  /** Worker threads (default 1): each synthesises one piece at a time. */
  readonly workers?: number;
  /** A synthesis that takes longer kills its worker (default 30 s; Flite needs ~25 ms per second of speech). */
  readonly jobTimeoutMs?: number;
  /** Starts one worker thread writing into `workDir` (tests wrap it to watch or kill workers). */
  readonly spawnWorker?: (workDir: string) => Worker;
}

export interface FlitePool {
  synthesize(request: FliteRequest): FliteJobHandle;
  /** Starts the workers now and waits until each has compiled Flite. */
  prewarm(): Promise<void>;
  readonly stats: { readonly spawned: number; readonly crashed: number };
  close(): Promise<void>;
}

/**
 * The worker is plain JS and starts without the parent's loader flags (`execArgv: []`): tsx's hooks in a
 * thread that runs node:wasi abort the process on Node 20 (see flite-engine.mjs).
 */
export function spawnFliteWorker(workDir: string): Worker {
  return new Worker(new URL('./flite-worker.mjs', import.meta.url), { execArgv: [], workerData: { workDir } });
}

interface PendingJob {
  readonly message: SynthesizeMessage;
  resolve(data: Uint8Array): void;
  reject(error: ProviderError): void;
}

interface Slot {
  readonly worker: Worker;
  ready: boolean;
  /** Made here, not in the worker, so it is removed whenever and however the worker ends. */
  readonly workDir: string;
  job?: PendingJob;
  timer?: ReturnType<typeof setTimeout>;
  /** Why the worker is going away, when the pool decided it (timeout, close). */
  endReason?: ProviderError;
  lastError?: unknown;
  readonly exited: Promise<void>;
}

export function createFlitePool(options: FlitePoolOptions = {}): FlitePool {
  const size = Math.max(1, options.workers ?? 1);
  const jobTimeoutMs = options.jobTimeoutMs ?? 30_000;
  const spawn = options.spawnWorker ?? spawnFliteWorker;
  const slots = new Set<Slot>();
  const queue: PendingJob[] = [];
  const stats = { spawned: 0, crashed: 0 };
  let nextId = 1;
  let closed = false;
  const readyWaiters = new Map<Slot, () => void>();

  function startSlot(): Slot {
    const workDir = mkdtempSync(join(tmpdir(), 'voice-runtime-flite-'));
    let worker: Worker;
    try {
      worker = spawn(workDir);
    } catch (error) {
      rmSync(workDir, { recursive: true, force: true });
      throw error;
    }
    stats.spawned++;
    let onExit!: () => void;
    const slot: Slot = { worker, ready: false, workDir, exited: new Promise<void>((resolve) => (onExit = resolve)) };
    slots.add(slot);
    worker.on('message', (reply: WorkerReply) => onReply(slot, reply));
    worker.on('error', (error) => (slot.lastError = error));
    worker.on('exit', (code) => {
      onWorkerExit(slot, code);
      onExit();
    });
    return slot;
  }

  function onReply(slot: Slot, reply: WorkerReply): void {
    if (reply.type === 'ready') {
      slot.ready = true;
      readyWaiters.get(slot)?.();
      readyWaiters.delete(slot);
      return;
    }
    const job = slot.job;
    if (!job || job.message.id !== reply.id) return;
    clearTimeout(slot.timer);
    slot.job = undefined;
    if (reply.type === 'wav') job.resolve(reply.wav);
    else job.reject(new ProviderError('LOCAL_TTS_FAILED', `Flite could not synthesise the text: ${reply.message}`, false, 'bad-request'));
    dispatch();
  }

  function onWorkerExit(slot: Slot, code: number): void {
    slots.delete(slot);
    clearTimeout(slot.timer);
    readyWaiters.get(slot)?.();
    readyWaiters.delete(slot);
    rmSync(slot.workDir, { recursive: true, force: true });
    const job = slot.job;
    slot.job = undefined;
    if (!slot.endReason) stats.crashed++;
    if (job) job.reject(slot.endReason ?? exitError(slot, code));
    if (!closed) dispatch();
  }

  function exitError(slot: Slot, code: number): ProviderError {
    const cause = slot.lastError instanceof Error ? `: ${slot.lastError.message}` : '';
    if (!slot.ready) {
      // It never compiled Flite: restarting for the same job would fail the same way.
      return new ProviderError('LOCAL_TTS_UNAVAILABLE', `the Flite worker failed to start (exit code ${code})${cause}; run "npm ci"`, false, 'unavailable', { cause: slot.lastError });
    }
    return new ProviderError('LOCAL_TTS_CRASHED', `the Flite worker thread died (exit code ${code})${cause}; it is restarted for the next piece`, true, 'unavailable', { cause: slot.lastError });
  }

  function dispatch(): void {
    while (queue.length > 0) {
      let slot = [...slots].find((s) => !s.job && !s.endReason);
      if (!slot) {
        if (slots.size >= size) return;
        slot = startSlot();
      }
      const job = queue.shift()!;
      run(slot, job);
    }
    for (const slot of slots) if (!slot.job) slot.worker.unref(); // idle workers never keep the process alive
  }

  function run(slot: Slot, job: PendingJob): void {
    slot.job = job;
    slot.worker.ref();
    slot.timer = setTimeout(() => {
      slot.endReason = new ProviderError('LOCAL_TTS_TIMEOUT', `Flite took longer than ${jobTimeoutMs} ms for one piece; its worker was restarted`, true, 'timeout');
      void slot.worker.terminate();
    }, jobTimeoutMs);
    slot.worker.postMessage(job.message);
  }

  return {
    synthesize(request) {
      if (closed) {
        const wav = Promise.reject(new ProviderError('LOCAL_TTS_CLOSED', 'the local TTS was closed', false, 'internal'));
        wav.catch(() => undefined);
        return { wav, cancel: () => {} };
      }
      let pending!: PendingJob;
      const wav = new Promise<Uint8Array>((resolve, reject) => {
        pending = { message: { type: 'synthesize', id: nextId++, ...request }, resolve, reject };
      });
      wav.catch(() => undefined); // a cancelled stream may never await it; its owner still sees the rejection
      queue.push(pending);
      dispatch();
      return {
        wav,
        cancel() {
          const at = queue.indexOf(pending);
          if (at >= 0) queue.splice(at, 1);
        },
      };
    },
    async prewarm() {
      while (!closed && slots.size < size) startSlot();
      const waits = [...slots].filter((s) => !s.ready).map((s) => new Promise<void>((resolve) => readyWaiters.set(s, resolve)));
      for (const slot of slots) if (!slot.job) slot.worker.unref();
      await Promise.all(waits);
    },
    stats,
    async close() {
      closed = true;
      const error = new ProviderError('LOCAL_TTS_CLOSED', 'the local TTS was closed', false, 'internal');
      for (const job of queue.splice(0)) job.reject(error);
      const all = [...slots];
      for (const slot of all) {
        slot.endReason = error;
        void slot.worker.terminate();
      }
      await Promise.all(all.map((s) => s.exited));
    },
  };
}
