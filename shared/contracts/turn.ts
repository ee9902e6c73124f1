/**
 * Turn detection: decides when the caller has finished speaking. A policy object fed VAD results and STT
 * events with their times; it returns decisions and never touches I/O, so tests drive it on a fake clock.
 */
export type TurnInput =
  /** One VAD frame; `atMs` is the frame's end time. */
  | { readonly type: 'vad'; readonly voiced: boolean; readonly atMs: number }
  | { readonly type: 'interim'; readonly text: string; readonly atMs: number }
  | { readonly type: 'final'; readonly text: string; readonly atMs: number }
  | { readonly type: 'sttEndOfTurn'; readonly text?: string; readonly atMs: number }
  | { readonly type: 'tick'; readonly atMs: number };

export type TurnDecision =
  | { readonly type: 'speechStarted'; readonly atMs: number }
  | { readonly type: 'speechEnded'; readonly atMs: number }
  /** Ask the STT to turn what it heard into finals now. */
  | { readonly type: 'finalize' }
  /** The caller paused on a stable transcript: a reply may be prepared speculatively. */
  | { readonly type: 'preemptive'; readonly text: string }
  /** The caller went on speaking: drop the speculative reply. */
  | { readonly type: 'discardPreemptive' }
  | { readonly type: 'endOfTurn'; readonly text: string; readonly speechEndMs: number | undefined; readonly sttFinalMs: number | undefined };

export interface TurnDetector {
  onInput(input: TurnInput): readonly TurnDecision[];
  /** When the detector next needs a `tick` (clock ms), if ever. */
  nextDeadline(): number | undefined;
  /** Forget the current (partial) turn, e.g. after the call was handed elsewhere. */
  reset(): void;
}
