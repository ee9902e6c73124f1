import type { AudioFrame } from '../audio/format';
import type { Channel } from '../contracts/channel';
import type { Clock, TimerHandle } from '../contracts/clock';

export interface PlayoutOptions {
  /** Audio handed to the channel ahead of real time. */
  readonly leadMs: number;
  readonly markIntervalMs: number;
  readonly frameMs: number;
  /** Most audio one turn may hold; frames beyond it are refused (the caller throttles upstream first). */
  readonly maxBufferedMs: number;
}

export interface PlayoutEvents {
  onFirstAudioOut(turnId: number, atMs: number): void;
  /** Every frame of the turn has been played to the caller (input ended first). */
  onPlayoutDone(turnId: number, atMs: number): void;
}

const MARK_PREFIX = 'p';
const MARK_GRACE_MS = 1000;

/**
 * Paces one call's outbound audio. The channel gets frames only `leadMs` ahead of real time; the rest waits
 * here, so `pause` (barge-in step 1) clears little and `resume` replays from the position the caller heard.
 * Every frame of the current turn is kept until it has played, so a resume never loses audio.
 *
 * Played position: a clock model of the far end (it plays in real time what it was given), confirmed by
 * marks where the channel reports them; marks sent before a clear carry an old epoch and are ignored.
 */
export function createPlayout(channel: Channel, clock: Clock, options: PlayoutOptions, events: PlayoutEvents) {
  const framesPerMark = Math.max(1, Math.round(options.markIntervalMs / options.frameMs));
  const maxFrames = Math.ceil(options.maxBufferedMs / options.frameMs);
  const useMarks = channel.capabilities.marks;

  let turnId = -1;
  let frames: (AudioFrame | undefined)[] = [];
  let releasedUpTo = 0;
  let sendIndex = 0;
  let inputEnded = false;
  let paused = false;
  let active = false;
  let firstOut = false;
  let epoch = 0;
  /** Clock time at which the far end will have played everything it was given. */
  let channelEndAt = 0;
  /** Frame index the far end confirmed through a mark, and when. */
  let confirmedIndex = 0;
  let timer: TimerHandle | undefined;
  let timerAt = Infinity;

  function estimateHeardIndex(now: number): number {
    const queuedFrames = Math.max(0, Math.ceil((channelEndAt - now) / options.frameMs - 1e-9));
    const byClock = Math.max(0, sendIndex - queuedFrames);
    if (!useMarks) return byClock;
    // Trust the clock at most one mark interval past the last confirmation.
    return Math.max(confirmedIndex, Math.min(byClock, confirmedIndex + framesPerMark));
  }

  function schedule(at: number): void {
    if (timer !== undefined && timerAt <= at) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timerAt = at;
    timer = clock.setTimeout(
      () => {
        timer = undefined;
        timerAt = Infinity;
        pump();
      },
      Math.max(0, at - clock.now()),
    );
  }

  function cancelTimer(): void {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    timerAt = Infinity;
  }

  function release(upTo: number): void {
    for (let i = releasedUpTo; i < upTo; i++) frames[i] = undefined;
    if (upTo > releasedUpTo) releasedUpTo = upTo;
  }

  function pump(): void {
    if (!active || paused) return;
    const now = clock.now();
    let leadMs = Math.max(0, channelEndAt - now);
    while (sendIndex < frames.length && leadMs < options.leadMs) {
      const frame = frames[sendIndex]!;
      channel.play(frame);
      channelEndAt = Math.max(channelEndAt, now) + options.frameMs;
      leadMs += options.frameMs;
      sendIndex++;
      if (!firstOut) {
        firstOut = true;
        events.onFirstAudioOut(turnId, now);
      }
      if (useMarks && sendIndex % framesPerMark === 0) channel.mark(`${MARK_PREFIX}${turnId}.${epoch}.${sendIndex}`);
    }
    const heard = estimateHeardIndex(now);
    release(Math.min(heard, sendIndex));
    if (sendIndex < frames.length) {
      schedule(channelEndAt - options.leadMs + options.frameMs);
      return;
    }
    if (!inputEnded) return; // Waiting for more audio; enqueue() pumps.
    // A channel that loses the last mark must not hold the call: after a grace period the clock decides.
    if ((heard >= sendIndex || now >= channelEndAt + MARK_GRACE_MS) && now >= channelEndAt) {
      finish(now);
      return;
    }
    if (useMarks && sendIndex % framesPerMark !== 0 && !endMarkSent) {
      endMarkSent = true;
      channel.mark(`${MARK_PREFIX}${turnId}.${epoch}.${sendIndex}`);
    }
    // Wait for the far end to play the tail; with marks, allow a little network slack for the last one.
    schedule(useMarks && now >= channelEndAt ? now + options.markIntervalMs : channelEndAt);
  }
  let endMarkSent = false;

  function finish(now: number): void {
    active = false;
    cancelTimer();
    frames = [];
    releasedUpTo = 0;
    events.onPlayoutDone(turnId, now);
  }

  return {
    get turnId() {
      return turnId;
    },
    get active() {
      return active;
    },
    get paused() {
      return paused;
    },
    /** Start a new turn's output; anything left of the previous turn is dropped. */
    begin(id: number): void {
      if (active && sendIndex > estimateHeardIndex(clock.now())) channel.clear();
      cancelTimer();
      turnId = id;
      frames = [];
      releasedUpTo = 0;
      sendIndex = 0;
      inputEnded = false;
      paused = false;
      active = true;
      firstOut = false;
      endMarkSent = false;
      confirmedIndex = 0;
      epoch++;
      channelEndAt = clock.now();
    },
    /** Queue a frame (channel format) of turn `id`; frames of any other turn are dropped. */
    enqueue(id: number, frame: AudioFrame): boolean {
      if (id !== turnId || !active || inputEnded) return false;
      if (frames.length - releasedUpTo >= maxFrames) return false;
      frames.push(frame);
      if (!paused) pump();
      return true;
    },
    /** No more audio will come for turn `id`. */
    endInput(id: number): void {
      if (id !== turnId || !active) return;
      inputEnded = true;
      pump();
    },
    /** Barge-in step 1: clear the far end, keep everything not yet heard. Returns the heard position (ms). */
    pause(): number {
      const now = clock.now();
      const heard = estimateHeardIndex(now);
      if (!active || paused) return heard * options.frameMs;
      paused = true;
      cancelTimer();
      if (sendIndex > heard) channel.clear();
      sendIndex = Math.min(sendIndex, heard);
      channelEndAt = now;
      epoch++;
      endMarkSent = false; // an end mark sent before the clear carries the old epoch: the replay needs its own
      return heard * options.frameMs;
    },
    resume(): void {
      if (!active || !paused) return;
      paused = false;
      channelEndAt = clock.now();
      pump();
    },
    /** Drop the turn (confirmed interruption, hang-up). Returns the heard position (ms). */
    cancel(): number {
      const now = clock.now();
      const heard = paused ? sendIndex : estimateHeardIndex(now);
      if (active && sendIndex > heard) channel.clear();
      active = false;
      paused = false;
      cancelTimer();
      frames = [];
      releasedUpTo = 0;
      epoch++;
      return heard * options.frameMs;
    },
    heardMs(): number {
      return (paused ? sendIndex : estimateHeardIndex(clock.now())) * options.frameMs;
    },
    /** Audio produced but not yet handed to the channel. */
    bufferedAheadMs(): number {
      return (frames.length - sendIndex) * options.frameMs;
    },
    /** A mark came back from the channel. */
    onMark(name: string): void {
      if (!name.startsWith(MARK_PREFIX)) return;
      const [t, e, i] = name.slice(MARK_PREFIX.length).split('.');
      if (Number(t) !== turnId || Number(e) !== epoch || !active) return;
      const index = Number(i);
      if (Number.isFinite(index) && index > confirmedIndex) confirmedIndex = Math.min(index, sendIndex);
      if (inputEnded && sendIndex === frames.length) pump();
    },
    close(): void {
      cancelTimer();
      active = false;
      frames = [];
    },
  };
}

export type Playout = ReturnType<typeof createPlayout>;
