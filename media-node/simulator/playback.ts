/**
 * The far end of a simulated carrier: what the node sends is queued as 20 ms frames and markers and played
 * one frame per tick, the way carriers play out; markers are "reached" when playback gets to them. Everything
 * played is recorded (PCM16 at the call's rate, with the time it played) so the simulator can write what the
 * caller heard. The queue is bounded like a carrier's buffer: frames beyond it are dropped and counted.
 */
export interface HeardFrame {
  /** When the frame played, ms since the playback was created. */
  readonly atMs: number;
  readonly pcm: Int16Array;
}

type Queued<Mark> = { kind: 'audio'; pcm: Int16Array } | { kind: 'mark'; mark: Mark };

/** About 30 s at 20 ms a frame: more than any carrier buffers (Vonage ~1024 frames, Asterisk ~1000). */
export const DEFAULT_MAX_QUEUED_FRAMES = 1500;

export function createPlayback<Mark>(options: { onMarkReached(mark: Mark): void; maxQueuedFrames?: number }) {
  const maxQueuedFrames = options.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES;
  const queue: Queued<Mark>[] = [];
  const heard: HeardFrame[] = [];
  const stats = { framesPlayed: 0, framesDropped: 0, clears: 0, marksReached: 0 };
  let queuedFrames = 0;
  const startedAt = performance.now();

  function reachLeadingMarks(): void {
    for (let head = queue[0]; head?.kind === 'mark'; head = queue[0]) {
      queue.shift();
      stats.marksReached++;
      options.onMarkReached(head.mark);
    }
  }

  return {
    stats,
    heard,
    /** Audio to play after what is queued, cut into frames of `frameSamples` (a partial tail plays as is). */
    queueAudio(pcm: Int16Array, frameSamples: number): void {
      for (let at = 0; at < pcm.length; at += frameSamples) {
        if (queuedFrames >= maxQueuedFrames) {
          stats.framesDropped++;
          continue;
        }
        queue.push({ kind: 'audio', pcm: pcm.slice(at, at + frameSamples) });
        queuedFrames++;
      }
    },
    queueMark(mark: Mark): void {
      queue.push({ kind: 'mark', mark });
    },
    /** Drops everything queued (barge-in) and returns the markers dropped: each carrier decides what to do with them. */
    clear(): Mark[] {
      stats.clears++;
      queuedFrames = 0;
      return queue.splice(0).flatMap((item) => (item.kind === 'mark' ? [item.mark] : []));
    },
    /** One 20 ms tick: markers at the head are reached, one frame plays, markers right behind it are reached. */
    tick(): void {
      reachLeadingMarks();
      const item = queue.shift();
      if (item?.kind === 'audio') {
        queuedFrames--;
        stats.framesPlayed++;
        heard.push({ atMs: performance.now() - startedAt, pcm: item.pcm });
      }
      reachLeadingMarks();
    },
    queuedFrames: () => queuedFrames,
    /** Everything played as one PCM16 buffer (or only the frames played in [fromMs, toMs)). */
    heardPcm(fromMs = -Infinity, toMs = Infinity): Int16Array {
      const frames = heard.filter((h) => h.atMs >= fromMs && h.atMs < toMs);
      const out = new Int16Array(frames.reduce((n, f) => n + f.pcm.length, 0));
      let at = 0;
      for (const f of frames) {
        out.set(f.pcm, at);
        at += f.pcm.length;
      }
      return out;
    },
    elapsedMs: () => performance.now() - startedAt,
  };
}

export type Playback<Mark> = ReturnType<typeof createPlayback<Mark>>;
