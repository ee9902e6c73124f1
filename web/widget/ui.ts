import type { WidgetError } from './errors';
import type { EndedEvent, TranscriptEvent, WidgetState } from './talk-connection';

export interface WidgetUiOptions {
  readonly title?: string;
  onCall(): void;
  onMute(): void;
  onText(text: string): void;
}

export interface WidgetUi {
  /** The element in the page (`data-state` carries the widget's state, for styling and tests). */
  readonly host: HTMLElement;
  setState(state: WidgetState): void;
  setMuted(muted: boolean): void;
  /** Whether the call has a microphone to mute (a typed call has none). */
  setMicrophone(available: boolean): void;
  transcript(event: TranscriptEvent): void;
  showError(error: WidgetError): void;
  clearError(): void;
  ended(event: EndedEvent): void;
  destroy(): void;
}

/** Captions kept on screen: older lines scroll away. */
const MAX_LINES = 40;

const STATUS: Record<WidgetState, string> = {
  idle: 'Click to talk',
  connecting: 'Connecting…',
  listening: 'Listening',
  speaking: 'Speaking',
  reconnecting: 'Reconnecting…',
  ended: 'Call ended',
  error: 'Not connected',
};

const ENDED: Record<EndedEvent['by'], string> = {
  user: 'You ended the call.',
  assistant: 'The assistant ended the call.',
  timeout: 'The call ended (time limit or no activity).',
  server: 'The call ended.',
};

/** Icons as inline SVG (emoji glyphs are missing on systems without an emoji font). */
const MIC_ICON =
  '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path fill="currentColor" d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z"/></svg>';
const STOP_ICON = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><rect fill="currentColor" x="6" y="6" width="12" height="12" rx="2"/></svg>';

const CSS = `
:host { all: initial; position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font: 14px/1.4 system-ui, sans-serif; color: #1b1f24; }
.panel { width: 300px; background: #fff; border-radius: 14px; box-shadow: 0 6px 28px rgba(0,0,0,.18); overflow: hidden; display: flex; flex-direction: column; }
header { display: flex; align-items: center; gap: 10px; padding: 12px; background: #f4f6f8; }
.title { font-weight: 600; flex: 1; }
.status { font-size: 12px; color: #5b6570; }
button { font: inherit; cursor: pointer; border: 0; border-radius: 999px; }
.call { width: 44px; height: 44px; background: #1f6feb; color: #fff; display: grid; place-items: center; padding: 0; }
:host([data-state=listening]) .call, :host([data-state=speaking]) .call, :host([data-state=connecting]) .call, :host([data-state=reconnecting]) .call { background: #d1242f; }
:host([data-state=speaking]) .call { box-shadow: 0 0 0 4px rgba(31,111,235,.35); }
.mute { padding: 4px 10px; background: #e6e9ed; font-size: 12px; }
.mute[aria-pressed=true] { background: #ffd8b5; }
.log { max-height: 220px; overflow-y: auto; padding: 8px 12px; display: flex; flex-direction: column; gap: 6px; }
.log:empty { display: none; }
.line { padding: 6px 10px; border-radius: 10px; max-width: 85%; white-space: pre-wrap; }
.user { align-self: flex-end; background: #1f6feb; color: #fff; }
.assistant { align-self: flex-start; background: #eef1f4; }
.interim { opacity: .6; }
.note { align-self: center; font-size: 12px; color: #5b6570; }
.error { margin: 0 12px 8px; padding: 8px 10px; border-radius: 8px; background: #ffebe9; color: #82071e; font-size: 13px; }
.error[hidden] { display: none; }
form { display: flex; gap: 6px; padding: 8px 12px 12px; }
input { flex: 1; font: inherit; padding: 6px 10px; border: 1px solid #ccd2d8; border-radius: 8px; }
.send { padding: 6px 12px; background: #e6e9ed; border-radius: 8px; }
`;

/** The widget's small panel in a shadow root (no framework): call button, mute, captions, text input. */
export function createWidgetUi(container: HTMLElement, options: WidgetUiOptions): WidgetUi {
  const host = document.createElement('div');
  host.className = 'voice-widget';
  host.dataset['state'] = 'idle';
  const root = host.attachShadow({ mode: 'open' });
  const style = document.createElement('style');
  style.textContent = CSS;
  const panel = el('div', 'panel');
  const header = el('header');
  const call = el('button', 'call');
  call.type = 'button';
  call.setAttribute('part', 'call-button');
  call.setAttribute('aria-label', 'Start a voice call');
  call.innerHTML = MIC_ICON;
  const titles = el('div', 'title');
  titles.textContent = options.title ?? 'Voice assistant';
  const status = el('div', 'status');
  status.setAttribute('role', 'status');
  status.textContent = STATUS.idle;
  titles.append(document.createElement('br'), status);
  const mute = el('button', 'mute');
  mute.type = 'button';
  mute.textContent = 'Mute';
  mute.setAttribute('aria-pressed', 'false');
  mute.hidden = true;
  header.append(call, titles, mute);
  const log = el('div', 'log');
  log.setAttribute('aria-live', 'polite');
  const error = el('div', 'error');
  error.setAttribute('role', 'alert');
  error.hidden = true;
  const form = el('form');
  const input = el('input');
  input.placeholder = 'Type a message…';
  input.setAttribute('aria-label', 'Message');
  input.maxLength = 4_000;
  const send = el('button', 'send');
  send.type = 'submit';
  send.textContent = 'Send';
  form.append(input, send);
  panel.append(header, log, error, form);
  root.append(style, panel);
  container.append(host);

  call.addEventListener('click', () => options.onCall());
  mute.addEventListener('click', () => options.onMute());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    options.onText(text);
  });

  /** Caption elements by utterance/turn id, so interim text is replaced in place. */
  const lines = new Map<string, HTMLElement>();
  let microphone = true;

  function append(line: HTMLElement): void {
    log.append(line);
    while (log.childElementCount > MAX_LINES) {
      const first = log.firstElementChild as HTMLElement;
      lines.forEach((value, key) => value === first && lines.delete(key));
      first.remove();
    }
    log.scrollTop = log.scrollHeight;
  }

  return {
    host,
    setState(state) {
      // Utterance and turn ids start again with each call.
      if (state === 'connecting') lines.clear();
      host.dataset['state'] = state;
      status.textContent = STATUS[state];
      const inCall = state === 'connecting' || state === 'listening' || state === 'speaking' || state === 'reconnecting';
      call.setAttribute('aria-label', inCall ? 'End the call' : 'Start a voice call');
      call.innerHTML = inCall ? STOP_ICON : MIC_ICON;
      mute.hidden = !microphone || !(state === 'listening' || state === 'speaking');
      if (state === 'listening' || state === 'speaking') error.hidden = true;
    },
    setMuted(muted) {
      mute.setAttribute('aria-pressed', String(muted));
      mute.textContent = muted ? 'Unmute' : 'Mute';
    },
    setMicrophone(available) {
      // Shown again by the next listening/speaking state.
      microphone = available;
      if (!available) mute.hidden = true;
    },
    transcript(event) {
      const key = `${event.role}:${event.id}`;
      if (event.role === 'assistant') {
        // A new assistant turn: an earlier one still open was cut without a final message; it stays as heard.
        for (const [other, line] of lines) {
          if (other !== key && other.startsWith('assistant:')) {
            line.classList.remove('interim');
            lines.delete(other);
          }
        }
      }
      let line = lines.get(key);
      if (!line) {
        line = el('div', `line ${event.role}`);
        line.dataset['role'] = event.role;
        lines.set(key, line);
        append(line);
      }
      line.textContent = event.text + (event.interrupted ? ' …' : '');
      line.classList.toggle('interim', !event.final);
      // The line stays keyed after a final: an STT may finalise part of an utterance (Deepgram's 5 s window)
      // and go on under the same id with the whole text, which must replace the line, not add another.
      // A reply cut before any of it was heard leaves nothing to show.
      if (event.final && !event.text) {
        line.remove();
        lines.delete(key);
      }
    },
    showError(widgetError) {
      error.textContent = widgetError.message;
      error.dataset['code'] = widgetError.code;
      error.hidden = false;
    },
    clearError() {
      error.hidden = true;
      error.textContent = '';
    },
    ended(event) {
      const note = el('div', 'line note');
      note.textContent = ENDED[event.by];
      append(note);
    },
    destroy() {
      host.remove();
    },
  };
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (className) element.className = className;
  return element;
}
