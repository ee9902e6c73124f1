/**
 * The widget bundle's entry (`/widget.js`). Embed:
 *
 *   <script src="https://voice.example.com/widget.js" data-assistant="asst_…" data-key="vr_pk_…"></script>
 *
 * renders the call button and exposes `window.VoiceWidget`: the embedded instance's `start()`, `stop()`,
 * `mute(bool)`, `sendText(text)`, `on(event, cb)`, `state`, `stats`, plus `create(options)` for more
 * control (`data-auto="false"` or no `data-assistant`: nothing is rendered until the page calls it).
 * Optional attributes: `data-base-url` (default: the script's origin), `data-title`, `data-output-rate`
 * (16000 or 24000).
 */
import { createVoiceWidget, type VoiceWidget, type VoiceWidgetOptions } from './widget';

export type { VoiceWidget, VoiceWidgetOptions, VoiceWidgetEvents, VoiceWidgetStats, StartOptions } from './widget';
export type { TranscriptEvent, MetricsEvent, EndedEvent, WidgetState } from './talk-connection';
export type { WidgetError, WidgetErrorCode } from './errors';

type CreateOptions = Omit<VoiceWidgetOptions, 'baseUrl'> & { readonly baseUrl?: string };

const script = document.currentScript as HTMLScriptElement | null;
const scriptOrigin = script?.src ? new URL(script.src, location.href).origin : location.origin;

function create(options: CreateOptions): VoiceWidget {
  return createVoiceWidget({ ...options, baseUrl: options.baseUrl ?? scriptOrigin });
}

let instance: VoiceWidget | undefined;
const need = (): VoiceWidget => {
  if (!instance) throw new Error('VoiceWidget: no embedded widget (add data-assistant and data-key to the script tag, or call VoiceWidget.create)');
  return instance;
};

const api = {
  version: '1',
  create,
  get instance(): VoiceWidget | undefined {
    return instance;
  },
  start: (options?: Parameters<VoiceWidget['start']>[0]) => need().start(options),
  stop: () => need().stop(),
  mute: (muted: boolean) => need().mute(muted),
  sendText: (text: string) => need().sendText(text),
  on: ((name, listener) => need().on(name, listener)) as VoiceWidget['on'],
  off: ((name, listener) => need().off(name, listener)) as VoiceWidget['off'],
  get state() {
    return need().state;
  },
  get stats() {
    return need().stats;
  },
};

(globalThis as unknown as { VoiceWidget: typeof api }).VoiceWidget = api;

const data = script?.dataset;
if (data?.['assistant'] && data['auto'] !== 'false') {
  const mount = () => {
    const rate = Number(data['outputRate']);
    instance = create({
      assistantId: data['assistant']!,
      publishableKey: data['key'] ?? '',
      ...(data['baseUrl'] ? { baseUrl: data['baseUrl'] } : {}),
      ...(data['title'] ? { title: data['title'] } : {}),
      ...(rate === 16_000 || rate === 24_000 ? { outputRateHz: rate } : {}),
    });
  };
  // A script in <head> runs before <body> exists.
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount, { once: true });
}
