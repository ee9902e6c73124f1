/**
 * The demo page `npm start` serves at `/`: pick or create an assistant, talk to it through the widget (its
 * API, without its panel), read the transcript and see each turn's latency.
 *
 * Keys: `GET /demo/config` may hand the page local keys (a node on embedded defaults bound to localhost);
 * otherwise the visitor pastes a project API key and a publishable key, kept in localStorage.
 */
import { createVoiceWidget, type VoiceWidget } from '../widget/widget';
import type { TranscriptEvent } from '../widget/talk-connection';
import { latencyChartSvg, STAGES, type TurnLatency } from './latency-chart';

interface Keys {
  apiKey: string;
  publishableKey: string;
}

interface AssistantSummary {
  id: string;
  name: string;
  version: number;
}

const STORAGE = 'voice-runtime-demo-keys';
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  keysSection: $<HTMLElement>('keys'),
  keysNote: $<HTMLElement>('keys-note'),
  apiKey: $<HTMLInputElement>('api-key'),
  publishableKey: $<HTMLInputElement>('publishable-key'),
  saveKeys: $<HTMLButtonElement>('save-keys'),
  assistant: $<HTMLSelectElement>('assistant'),
  create: $<HTMLDetailsElement>('create'),
  newName: $<HTMLInputElement>('new-name'),
  newPrompt: $<HTMLTextAreaElement>('new-prompt'),
  newGreeting: $<HTMLInputElement>('new-greeting'),
  createButton: $<HTMLButtonElement>('create-assistant'),
  setupError: $<HTMLElement>('setup-error'),
  call: $<HTMLButtonElement>('call'),
  mute: $<HTMLButtonElement>('mute'),
  state: $<HTMLElement>('state'),
  textForm: $<HTMLFormElement>('text-form'),
  text: $<HTMLInputElement>('text'),
  callError: $<HTMLElement>('call-error'),
  transcript: $<HTMLElement>('transcript'),
  chart: $<HTMLElement>('chart'),
  legend: $<HTMLElement>('legend'),
};

let keys: Keys | undefined;
let widget: VoiceWidget | undefined;
let widgetFor = '';
let muted = false;
const turns: TurnLatency[] = [];
const lines = new Map<string, HTMLElement>();

ui.legend.innerHTML = STAGES.map((s) => `<span><i style="background:${s.colour}"></i>${s.label}</span>`).join('');

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  if (!keys?.apiKey) throw new Error('paste a project API key first');
  const response = await fetch(path, { ...init, headers: { authorization: `Bearer ${keys.apiKey}`, 'content-type': 'application/json', ...init.headers } });
  const body = (await response.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body as T;
}

async function loadKeys(): Promise<void> {
  try {
    const response = await fetch('/demo/config');
    if (response.ok) {
      const local = (await response.json()) as Partial<Keys>;
      if (local.apiKey && local.publishableKey) {
        keys = { apiKey: local.apiKey, publishableKey: local.publishableKey };
        ui.keysSection.hidden = true;
        return;
      }
    }
  } catch {
    // No local keys: ask for them.
  }
  const stored = localStorage.getItem(STORAGE);
  if (stored) {
    try {
      keys = JSON.parse(stored) as Keys;
      ui.apiKey.value = keys.apiKey;
      ui.publishableKey.value = keys.publishableKey;
    } catch {
      localStorage.removeItem(STORAGE);
    }
  }
}

async function loadAssistants(selectId?: string): Promise<void> {
  ui.setupError.textContent = '';
  if (!keys) return;
  try {
    const { data } = await api<{ data: AssistantSummary[] }>('/v1/assistants');
    ui.assistant.replaceChildren(
      ...data.map((a) => {
        const option = document.createElement('option');
        option.value = a.id;
        option.textContent = `${a.name} · v${a.version}`;
        return option;
      }),
    );
    if (selectId) ui.assistant.value = selectId;
    ui.create.open = data.length === 0;
  } catch (error) {
    ui.setupError.textContent = `Could not list assistants: ${(error as Error).message}`;
  }
}

async function createAssistant(): Promise<void> {
  ui.setupError.textContent = '';
  ui.createButton.disabled = true;
  try {
    const created = await api<AssistantSummary>('/v1/assistants', {
      method: 'POST',
      body: JSON.stringify({
        name: ui.newName.value.trim() || 'Local demo',
        prompt: ui.newPrompt.value.trim() || 'You are a friendly assistant.',
        greeting: ui.newGreeting.value.trim(),
        stt: { provider: 'local' },
        llm: { provider: 'local' },
        tts: { provider: 'local' },
      }),
    });
    ui.create.open = false;
    await loadAssistants(created.id);
  } catch (error) {
    ui.setupError.textContent = `Could not create the assistant: ${(error as Error).message}`;
  } finally {
    ui.createButton.disabled = false;
  }
}

function addLine(className: string, text: string): HTMLElement {
  const line = document.createElement('div');
  line.className = `line ${className}`;
  line.textContent = text;
  ui.transcript.append(line);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return line;
}

function showTranscript(event: TranscriptEvent): void {
  const key = `${event.role}:${event.id}`;
  const line = lines.get(key) ?? addLine(event.role, '');
  lines.set(key, line);
  line.textContent = event.text + (event.interrupted ? ' …' : '');
  line.classList.toggle('interim', !event.final);
  // A final part may be followed by more under the same id (an utterance finalised in pieces): the line stays
  // that utterance's; an empty final removes it.
  if (event.final && !event.text) {
    line.remove();
    lines.delete(key);
  }
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

/** One widget per assistant (and per keys): made when a call starts for another one. */
function widgetForCall(): VoiceWidget | undefined {
  const assistantId = ui.assistant.value;
  if (!assistantId || !keys) {
    ui.callError.textContent = keys ? 'Pick or create an assistant first.' : 'Paste the keys first.';
    return undefined;
  }
  const identity = `${assistantId}|${keys.publishableKey}`;
  if (widget && widgetFor === identity) return widget;
  widget?.destroy();
  widgetFor = identity;
  const w = createVoiceWidget({ assistantId, publishableKey: keys.publishableKey, baseUrl: location.origin, container: null });
  widget = w;
  muted = false;
  ui.mute.textContent = 'Mute';
  w.on('state', (state) => {
    // Ids restart with every call.
    if (state === 'connecting') lines.clear();
    ui.state.textContent = state;
    ui.state.dataset['state'] = state;
    document.body.dataset['state'] = state;
    const inCall = state === 'connecting' || state === 'listening' || state === 'speaking' || state === 'reconnecting';
    ui.call.textContent = inCall ? 'End call' : 'Start call';
    ui.call.className = inCall ? 'danger' : 'primary';
    ui.mute.disabled = !inCall;
    if (state === 'listening') ui.callError.textContent = '';
  });
  w.on('transcript', showTranscript);
  w.on('metrics', (m) => {
    turns.push({ turn: `#${turns.length + 1}`, values: m.values });
    ui.chart.innerHTML = latencyChartSvg(turns);
  });
  w.on('error', (e) => (ui.callError.textContent = e.message));
  w.on('ended', (e) => addLine('system', e.by === 'assistant' ? 'The assistant ended the call.' : e.by === 'user' ? 'Call ended.' : `Call ended (${e.reason}).`));
  // Tests read the widget from the page.
  (window as unknown as { demoWidget?: VoiceWidget }).demoWidget = w;
  return w;
}

ui.saveKeys.addEventListener('click', () => {
  keys = { apiKey: ui.apiKey.value.trim(), publishableKey: ui.publishableKey.value.trim() };
  localStorage.setItem(STORAGE, JSON.stringify(keys));
  void loadAssistants();
});
ui.createButton.addEventListener('click', () => void createAssistant());
ui.call.addEventListener('click', () => {
  ui.callError.textContent = '';
  const w = widgetForCall();
  if (!w) return;
  if (w.state === 'idle' || w.state === 'ended' || w.state === 'error') void w.start();
  else w.stop();
});
ui.mute.addEventListener('click', () => {
  muted = !muted;
  widget?.mute(muted);
  ui.mute.textContent = muted ? 'Unmute' : 'Mute';
});
ui.textForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text) return;
  ui.text.value = '';
  widgetForCall()?.sendText(text);
});

void loadKeys().then(() => loadAssistants());
