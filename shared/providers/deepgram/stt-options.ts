import { z } from 'zod';
import { ProviderError } from '../../contracts/errors';

/**
 * `options` of a deepgram STT block. One schema for Nova (/v1/listen) and Flux (/v2/listen): each wire reads
 * the fields its endpoint knows and ignores the rest (Flux has its own end-of-turn model, so the Nova
 * endpointing fields mean nothing to it, and the eot* fields nothing to Nova).
 */
export const deepgramSttOptionsSchema = z.object({
  /** Nova: interim hypotheses between finals (needed for UtteranceEnd). */
  interimResults: z.boolean().default(true),
  /** Nova: ms of silence that make Deepgram finalise a window (`speech_final`); false = Deepgram's default behaviour off. */
  endpointingMs: z.union([z.number().int().min(10).max(10_000), z.literal(false)]).default(300),
  /** Nova: gap in word timings that yields an UtteranceEnd message (Deepgram requires ≥ 1000); false = not asked. */
  utteranceEndMs: z.union([z.number().int().min(1000).max(5000), z.literal(false)]).default(1000),
  /** Nova: SpeechStarted messages (useful for barge-in). */
  vadEvents: z.boolean().default(true),
  smartFormat: z.boolean().default(true),
  punctuate: z.boolean().default(true),
  /** Words to boost (Nova-3 and Flux `keyterm`, sent once per term). */
  keyterms: z.array(z.string().min(1).max(200)).max(100).default([]),
  /** Flux: end-of-turn confidence threshold, 0.5–1.0 (1.0 turns the model's end-of-turn off; Deepgram's default 0.7). */
  eotThreshold: z.number().min(0.5).max(1).optional(),
  /** Flux: threshold of EagerEndOfTurn events, 0.3–0.9 (unset: no eager events). */
  eagerEotThreshold: z.number().min(0.3).max(0.9).optional(),
  /** Flux: silence that forces an end of turn whatever the model thinks, 500–60000 ms (Deepgram's default 5000). */
  eotTimeoutMs: z.number().int().min(500).max(60_000).optional(),
  /** Opt out of Deepgram's model improvement programme (priced differently). */
  mipOptOut: z.boolean().optional(),
});

export type DeepgramSttOptions = z.output<typeof deepgramSttOptionsSchema>;

/** Parse again at connect time: cheap, and it fills the defaults when a caller skipped the registry's validation. */
export function parseDeepgramSttOptions(options: Readonly<Record<string, unknown>>): DeepgramSttOptions {
  const parsed = deepgramSttOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
    throw new ProviderError('DEEPGRAM_BAD_REQUEST', `options of the deepgram STT block are invalid: ${issues}`, false, 'bad-request');
  }
  return parsed.data;
}
