export interface DtmfOptions {
  readonly terminator: string;
  readonly interDigitTimeoutMs: number;
  readonly maxDigits: number;
}

/** Collects key presses into one sequence: ended by the terminator, the length limit, or a pause. */
export function createDtmfCollector(options: DtmfOptions) {
  let digits = '';
  let deadline: number | undefined;

  function take(): string | undefined {
    const out = digits;
    digits = '';
    deadline = undefined;
    return out || undefined;
  }

  return {
    /** Returns the finished sequence when this key ends it. */
    press(digit: string, atMs: number): string | undefined {
      if (digit === options.terminator) return take();
      digits += digit;
      if (digits.length >= options.maxDigits) return take();
      deadline = atMs + options.interDigitTimeoutMs;
      return undefined;
    },
    tick(atMs: number): string | undefined {
      return deadline !== undefined && atMs >= deadline ? take() : undefined;
    },
    nextDeadline: () => deadline,
  };
}
