export interface CallTimerOptions {
  /** 0 disables the idle timer. */
  readonly idleTimeoutMs: number;
  readonly maxReprompts: number;
  readonly maxDurationMs: number;
}

export type CallTimerInput =
  | { readonly type: 'callStarted'; readonly atMs: number }
  /** The assistant finished speaking: the caller's turn to talk, the idle clock starts. */
  | { readonly type: 'assistantFinished'; readonly atMs: number }
  | { readonly type: 'assistantStarted'; readonly atMs: number }
  /** The caller spoke (or pressed a key): idle clock off, reprompt count back to zero. */
  | { readonly type: 'userActivity'; readonly atMs: number }
  | { readonly type: 'tick'; readonly atMs: number };

export type CallTimerDecision =
  | { readonly type: 'reprompt'; readonly count: number }
  | { readonly type: 'idleHangup' }
  | { readonly type: 'maxDuration' };

const NONE: readonly CallTimerDecision[] = Object.freeze([]);

/** Idle timeout with reprompts, then hang-up; and the call's maximum duration. */
export function createCallTimers(options: CallTimerOptions) {
  let idleDeadline: number | undefined;
  let maxDeadline: number | undefined;
  let reprompts = 0;
  let maxFired = false;

  return {
    onInput(input: CallTimerInput): readonly CallTimerDecision[] {
      switch (input.type) {
        case 'callStarted':
          maxDeadline = input.atMs + options.maxDurationMs;
          return NONE;
        case 'assistantFinished':
          idleDeadline = options.idleTimeoutMs > 0 ? input.atMs + options.idleTimeoutMs : undefined;
          return NONE;
        case 'assistantStarted':
          idleDeadline = undefined;
          return NONE;
        case 'userActivity':
          idleDeadline = undefined;
          reprompts = 0;
          return NONE;
        case 'tick': {
          if (!maxFired && maxDeadline !== undefined && input.atMs >= maxDeadline) {
            maxFired = true;
            idleDeadline = undefined;
            return [{ type: 'maxDuration' }];
          }
          if (idleDeadline === undefined || input.atMs < idleDeadline) return NONE;
          idleDeadline = undefined;
          if (reprompts >= options.maxReprompts) return [{ type: 'idleHangup' }];
          reprompts++;
          return [{ type: 'reprompt', count: reprompts }];
        }
      }
    },
    nextDeadline(): number | undefined {
      const max = maxFired ? undefined : maxDeadline;
      if (idleDeadline === undefined) return max;
      return max === undefined ? idleDeadline : Math.min(idleDeadline, max);
    },
  };
}

export type CallTimers = ReturnType<typeof createCallTimers>;
