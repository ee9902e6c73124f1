import WebSocket from 'ws';

/**
 * What every simulated carrier hands the simulator once its call is up: the caller's mouth and ears at the
 * call's sample rate, the carrier's own counters for the summary, and both ways to end the call.
 */
export interface SimulatedCall {
  readonly carrier: string;
  /** The rate of `say()` and `heardPcm()` (the call's wire rate). */
  readonly sampleRateHz: number;
  /** The node's conversation id when the carrier learnt it while dialling (for the transcript). */
  readonly conversationId?: string;
  /** Caller speech (PCM16 at `sampleRateHz`), queued behind what is queued. */
  say(pcm: Int16Array): void;
  /** Everything the caller heard so far (PCM16 at `sampleRateHz`). */
  heardPcm(): Int16Array;
  /** Frames played to the caller, and the carrier's protocol counters (clears, marks, flushes…) for the summary. */
  counters(): Readonly<Record<string, number>>;
  /** The caller hangs up, the carrier's way. */
  hangUp(): Promise<void>;
  /** Settles when the call's transport has closed (either side). */
  readonly closed: Promise<void>;
  /** True once the node ended the call (closed or hung up first). */
  endedByNode(): boolean;
}

/** Opens a WebSocket as a carrier does and waits for it; an HTTP refusal of the upgrade is an error naming the status. */
export async function openCarrierSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_request, response) => reject(new Error(`the media URL ${redact(url)} answered HTTP ${response.statusCode}`)));
  });
  // A reset mid-call ends in 'close', which every carrier handles; unheard, the 'error' would crash the process.
  ws.on('error', () => undefined);
  return ws;
}

/** A URL for messages, without credentials embedded in it. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(an invalid URL)';
  }
}

/** Runs `tick` every 20 ms (the carriers' frame clock) until stopped. */
export function startFrameClock(tick: () => void, frameMs = 20): () => void {
  const timer = setInterval(tick, frameMs);
  return () => clearInterval(timer);
}

export class DialError extends Error {
  override readonly name = 'DialError';
}

/** The body of a refused webhook or API call, shortened, as a DialError that says what was asked. */
export async function dialFailure(what: string, response: Response): Promise<DialError> {
  const text = (await response.text()).slice(0, 400);
  return new DialError(`${what} answered HTTP ${response.status}: ${text}`);
}
