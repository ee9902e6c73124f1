import type { ToolExecutor } from '../contracts/llm';

/**
 * What a call's tools may ask of the engine, and what the engine asks of them, beyond the ToolExecutor
 * contract (definitions + execute). The engine binds its control once per call; a plain ToolExecutor (no
 * `bind`, no `fillerFor`) works as before.
 */

/** How the call ends once the current reply has been spoken. */
export type CallEnding =
  /** `message` (may be empty) is said, not interruptible, then the line hangs up. */
  | { readonly kind: 'hangup'; readonly message: string; readonly reason: string }
  /** `message` is said, then the channel transfers the caller to `to` (E.164 or SIP URI). */
  | { readonly kind: 'transfer'; readonly message: string; readonly to: string };

export interface CallControl {
  /** The channel can hand the caller over (`capabilities.transfer` and a `transfer` method). */
  readonly canTransfer: boolean;
  /** End the call after the reply in progress: no further LLM round; the ending's message is said first. */
  endAfterReply(ending: CallEnding): void;
}

/** Said while a slow tool runs. */
export interface ToolFiller {
  readonly phrase: string;
  /** Said when the tool has not answered after this long. */
  readonly afterMs: number;
}

/** A ToolExecutor with the engine's optional extras. */
export interface CallTools extends ToolExecutor {
  /** The engine hands its control over once, before the call starts. */
  bind?(control: CallControl): void;
  /** The filler phrase of a tool, if it has one. */
  fillerFor?(toolName: string): ToolFiller | undefined;
}
