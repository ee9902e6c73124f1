import { type AudioFrame, FRAME_MS, pcm16View } from '../audio/format';
import type { ResamplerFactory } from '../audio/resampler';
import type { AssistantConfig, LlmBlock, SttBlock, TtsBlock } from '../config/assistant';
import { fillTemplate } from '../config/template';
import type { Channel } from '../contracts/channel';
import type { Clock, TimerHandle } from '../contracts/clock';
import { asProviderError, ProviderError } from '../contracts/errors';
import type { KnowledgeBase } from '../contracts/knowledge';
import type { ChatMessage, LanguageModel } from '../contracts/llm';
import { type AssistantTurnKind, type CallObserver, combineObservers, type Stage, type TurnMetrics } from '../contracts/observer';
import type { SpeechToText, SttEvent, SttSession } from '../contracts/stt';
import type { TextToSpeech } from '../contracts/tts';
import type { TurnDecision } from '../contracts/turn';
import type { Vad } from '../contracts/vad';
import type { ResolvedProvider } from '../providers/registry';
import type { CallEnding, CallTools } from '../tools/control';
import type { EarlyStt } from './prewarm';
import { createChunker } from './chunker';
import { createDtmfCollector } from './dtmf';
import { createEndpointing } from './endpointing';
import { createInboundQueue } from './inbound-queue';
import { createInterruptionPolicy, type InterruptionDecision } from './interruption';
import { completeTurnMetrics, newTurnMetrics, type OverheadMarks } from './metrics';
import { createPlayout } from './playout';
import { type ReplyOutcome, runReply } from './reply';
import { passagesMessage, retrievalSources, retrieve, withPassages } from './retrieval';
import { createSpeechOutput, type ProviderCursor, type SpeechOutput } from './speech-output';
import { createSpokenText, type SpokenText } from './spoken-text';
import { createCallTimers, type CallTimerDecision } from './timers';
import { joinText, normalisedWords, wordCount } from './words';

export interface CommunicationDeps {
  readonly callId: string;
  readonly config: AssistantConfig;
  readonly channel: Channel;
  readonly clock: Clock;
  readonly vad: Vad;
  readonly stt: readonly ResolvedProvider<SpeechToText, SttBlock>[];
  readonly llm: readonly ResolvedProvider<LanguageModel, LlmBlock>[];
  readonly tts: readonly ResolvedProvider<TextToSpeech, TtsBlock>[];
  readonly resamplers: ResamplerFactory;
  readonly observer: CallObserver;
  /** The call's tools; `bind` (if any) receives the engine's control (end_call, transfer_call). */
  readonly tools?: CallTools;
  /** Call variables for the prompt and greeting templates (override the assistant's defaults). */
  readonly variables?: Readonly<Record<string, string>>;
  /** History to continue (a resumed session); the system prompt is added when absent. */
  readonly history?: readonly ChatMessage[];
  /**
   * The greeting, synthesised while the phone rang (shared/engine/prewarm.ts): spoken through this
   * provider first, so its first frame leaves as soon as the call starts; the real chain follows it.
   */
  readonly greetingTts?: ResolvedProvider<TextToSpeech, TtsBlock>;
  /** The first STT provider's session, opened while the phone rang (shared/engine/prewarm.ts): adopted, not reopened. */
  readonly earlyStt?: EarlyStt;
  /** Inbound frames held while the VAD is busy; beyond it the oldest are dropped (and reported). */
  readonly maxInboundFrames?: number;
  /**
   * The assistant's knowledge bases (its `knowledgeBases`, resolved by the host), searched on every user turn
   * before the LLM request (shared/engine/retrieval.ts). Absent or empty: no retrieval.
   */
  readonly knowledge?: (config: AssistantConfig) => readonly KnowledgeBase[];
  /** Retrieval latency budget per turn, ms (default 150); past it the turn goes on without the passages. */
  readonly retrievalBudgetMs?: number;
}

interface AssistantTurn {
  readonly id: number;
  readonly kind: AssistantTurnKind;
  readonly metrics: TurnMetrics;
  readonly marks: OverheadMarks;
  readonly abort: AbortController;
  readonly spoken: SpokenText;
  readonly output: SpeechOutput;
  readonly interruptible: boolean;
  readonly hangupAfter: string | undefined;
  /** A tool ended the conversation during this reply: said and done once the reply has played out. */
  ending: CallEnding | undefined;
  /**
   * Preemptive reply: generated but held back until the end of the turn confirms its transcript. Its pieces,
   * tool-round messages and outcome wait here; a discarded reply leaves nothing behind.
   */
  held: { text: string; pieces: string[]; messages: ChatMessage[]; outcome: ReplyOutcome | undefined; release(adopted: boolean): void; released: Promise<boolean> } | undefined;
  pausedHeardMs: number | undefined;
  over: boolean;
}

export interface Communication {
  start(): Promise<void>;
  /** End the call from our side (hang-up); idempotent. */
  end(reason: string): Promise<void>;
  /** Typed user input (a text channel, the browser's text box): one whole user turn. */
  sendText(text: string): void;
  readonly history: readonly ChatMessage[];
  /** Resolves with the end reason. */
  readonly ended: Promise<string>;
}

const BACKPRESSURE_POLL_MS = 100;

/**
 * One call: wires the channel to VAD, STT, turn detection, LLM and TTS. Policy lives in the small modules
 * it imports (endpointing, interruption, playout, timers); this file only routes events and decisions.
 */
export function createCommunication(deps: CommunicationDeps): Communication {
  const { config, channel, clock } = deps;
  // A failing sink (logger, tracer, store) must never break the call.
  const observer = combineObservers(deps.observer);
  const variables = { ...config.variables, ...deps.variables };
  const history: ChatMessage[] = deps.history ? [...deps.history] : [];
  if (!history.some((m) => m.role === 'system')) history.unshift({ role: 'system', content: fillTemplate(config.prompt, variables) });

  const knowledgeSources = resolveKnowledge();

  const sttCursor: ProviderCursor = { index: 0 };
  const llmCursor: ProviderCursor = { index: 0 };
  const ttsCursor: ProviderCursor = { index: 0 };
  /** Every TTS of the chain failed: the assistant has no voice left, so the call ends after this turn. */
  let ttsExhausted = false;
  let stt: SttSession | undefined;
  let earlyStt = deps.earlyStt;
  let sttRetries = 0;
  let sttGeneration = 0;

  let ended = false;
  let resolveEnded!: (reason: string) => void;
  const endedPromise = new Promise<string>((r) => (resolveEnded = r));

  let turnCounter = 0;
  let turn: AssistantTurn | undefined;
  let previousTurnWords: string[] = [];
  let pendingUserText: string | undefined;
  let pendingUserSource: 'speech' | 'dtmf' | 'text' = 'speech';
  /** The caller's current utterance as the STT has it (finals so far + interim). */
  let utteranceFinals: string[] = [];
  let utteranceInterim = '';

  const turnDetector = createEndpointing(config.turn);
  const interruption = createInterruptionPolicy({ ...config.interruption, dtmfBargeIn: config.dtmf.bargeIn }, () => [
    ...previousTurnWords,
    ...(turn?.spoken.normalisedWords() ?? []),
  ]);
  const timers = createCallTimers({
    idleTimeoutMs: config.idle.timeoutMs,
    maxReprompts: config.idle.maxReprompts,
    maxDurationMs: config.maxDurationMs,
  });
  const dtmf = createDtmfCollector(config.dtmf);
  const playout = createPlayout(
    channel,
    clock,
    { ...config.output, frameMs: FRAME_MS },
    {
      onFirstAudioOut(turnId, atMs) {
        if (turn?.id === turnId) turn.metrics.firstAudioOut ??= atMs;
      },
      onPlayoutDone(turnId, atMs) {
        if (turn?.id === turnId) completeTurn(turn, atMs);
      },
    },
  );
  const inbound = createInboundQueue<AudioFrame>(deps.maxInboundFrames ?? 50);
  deps.tools?.bind?.({
    canTransfer: channel.capabilities.transfer && typeof channel.transfer === 'function',
    endAfterReply(ending) {
      if (turn && !turn.over) turn.ending ??= ending;
    },
  });

  // ---- timers: one clock timer at the earliest deadline of every policy ----
  let timer: TimerHandle | undefined;
  let timerAt = Infinity;
  function reschedule(): void {
    if (ended) return;
    // Runs on every frame: no arrays, just the earliest of the policies' deadlines.
    let at = Infinity;
    const d1 = turnDetector.nextDeadline();
    if (d1 !== undefined && d1 < at) at = d1;
    const d2 = interruption.nextDeadline();
    if (d2 !== undefined && d2 < at) at = d2;
    const d3 = timers.nextDeadline();
    if (d3 !== undefined && d3 < at) at = d3;
    const d4 = dtmf.nextDeadline();
    if (d4 !== undefined && d4 < at) at = d4;
    if (at === timerAt) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    timerAt = at;
    if (at === Infinity) return;
    timer = clock.setTimeout(onTick, Math.max(0, at - clock.now()));
  }
  function onTick(): void {
    timer = undefined;
    timerAt = Infinity;
    if (ended) return;
    const now = clock.now();
    handleTurnDecisions(turnDetector.onInput({ type: 'tick', atMs: now }));
    handleInterruption(interruption.onInput({ type: 'tick', atMs: now }));
    handleTimers(timers.onInput({ type: 'tick', atMs: now }));
    const digits = dtmf.tick(now);
    if (digits) submitDtmf(digits);
    reschedule();
  }

  // ---- inbound audio ----
  /** One VAD result, in frame order. */
  function onVadResult(probability: number): void {
    if (ended) return;
    const voiced = probability >= config.vad.threshold;
    const now = clock.now();
    handleTurnDecisions(turnDetector.onInput({ type: 'vad', voiced, atMs: now }));
    handleInterruption(interruption.onInput({ type: 'vad', voiced, atMs: now }));
    reschedule();
  }

  /** Frames that arrived while an asynchronous VAD (Silero) was busy, in order. */
  async function drainInbound(): Promise<void> {
    try {
      for (let frame = inbound.shift(); frame; frame = inbound.shift()) {
        if (ended) return;
        const result = deps.vad.process(pcm16View(frame.data));
        onVadResult(typeof result === 'number' ? result : await result);
      }
    } finally {
      inbound.draining = false;
    }
  }

  function onAudio(frame: AudioFrame): void {
    if (ended) return;
    // The STT hears every frame at once, even while the VAD is behind.
    stt?.write(frame);
    if (inbound.draining) {
      const dropped = inbound.push(frame);
      if (dropped) observer.onEvent({ type: 'inboundOverflow', droppedFrames: dropped, atMs: clock.now() });
      return;
    }
    let result: number | Promise<number>;
    try {
      result = deps.vad.process(pcm16View(frame.data));
    } catch (error) {
      reportError('stt', deps.vad.id, asProviderError(`vad-${deps.vad.id}`, error), 'ignored');
      return;
    }
    // The hot path: a synchronous VAD (WebRTC) costs no promise per frame.
    if (typeof result === 'number') return onVadResult(result);
    inbound.draining = true;
    result
      .then((probability) => {
        onVadResult(probability);
        return drainInbound();
      })
      .catch((error) => {
        inbound.draining = false;
        reportError('stt', deps.vad.id, asProviderError(`vad-${deps.vad.id}`, error), 'ignored');
      });
  }

  // ---- STT ----
  async function openStt(): Promise<void> {
    const generation = ++sttGeneration;
    const provider = deps.stt[sttCursor.index];
    if (!provider) return;
    const block = provider.block;
    const early = earlyStt;
    earlyStt = undefined;
    if (early) {
      if (generation === 1 && sttCursor.index === 0 && early.providerId === provider.impl.id && !ended) {
        // The session first: attach() replays held events, and an error among them must replace this session.
        stt = early.session;
        early.attach((event) => {
          if (generation === sttGeneration && !ended) onSttEvent(provider.impl.id, event);
        });
        return;
      }
      void early.close().catch(() => undefined);
    }
    try {
      const session = await provider.impl.open(
        {
          language: block.language,
          model: block.model,
          endpoint: block.endpoint,
          apiKey: provider.apiKey,
          options: block.options,
          signal: new AbortController().signal,
        },
        (event) => {
          if (generation === sttGeneration && !ended) onSttEvent(provider.impl.id, event);
        },
      );
      if (ended || generation !== sttGeneration) {
        await session.close();
        return;
      }
      stt = session;
    } catch (error) {
      await onSttFailure(provider.impl.id, asProviderError(provider.impl.id, error));
    }
  }

  async function onSttFailure(providerId: string, error: ProviderError): Promise<void> {
    const old = stt;
    stt = undefined;
    sttGeneration++;
    old?.close().catch(() => undefined);
    const sameAgain = error.retryable && sttRetries < 2;
    if (sameAgain) sttRetries++;
    else {
      sttCursor.index++;
      sttRetries = 0;
    }
    const hasNext = deps.stt[sttCursor.index] !== undefined;
    reportError('stt', providerId, error, hasNext ? (sameAgain ? 'retry' : 'fallback') : 'fallbackMessage');
    if (hasNext) await openStt();
    else if (!ended) say(config.fallbackMessage, 'fallback');
  }

  function onSttEvent(providerId: string, event: SttEvent): void {
    const now = clock.now();
    switch (event.type) {
      case 'interim':
        if (event.text.trim()) observer.onEvent({ type: 'transcript', text: joinText([...utteranceFinals, event.text]), final: false, atMs: now });
        utteranceInterim = event.text;
        transcriptToInterruption(now);
        handleTurnDecisions(turnDetector.onInput({ type: 'interim', text: event.text, atMs: now }));
        break;
      case 'final':
        if (event.text.trim()) {
          utteranceFinals.push(event.text);
          observer.onEvent({ type: 'transcript', text: joinText(utteranceFinals), final: true, atMs: now });
        }
        utteranceInterim = '';
        // Barge-in first: a final that brings the caller's first words and also ends their turn must interrupt
        // the assistant before the turn is handled, or the turn would be dropped as if it were a backchannel.
        transcriptToInterruption(now);
        handleTurnDecisions(turnDetector.onInput({ type: 'final', text: event.text, atMs: now }));
        break;
      case 'endOfTurn':
        handleTurnDecisions(turnDetector.onInput({ type: 'sttEndOfTurn', text: event.text, atMs: now }));
        break;
      case 'speechStarted':
        break;
      case 'error':
        void onSttFailure(providerId, event.error);
        return;
    }
    reschedule();
  }

  function transcriptToInterruption(now: number): void {
    const text = joinText([...utteranceFinals, utteranceInterim]);
    if (text) handleInterruption(interruption.onInput({ type: 'transcript', text, atMs: now }));
  }

  // ---- decisions ----
  function handleTurnDecisions(decisions: readonly TurnDecision[]): void {
    for (const d of decisions) {
      switch (d.type) {
        case 'speechStarted':
          // A new utterance: transcripts of the previous one (a late final) must not count towards barge-in.
          utteranceFinals = [];
          utteranceInterim = '';
          observer.onEvent({ type: 'userSpeechStarted', atMs: d.atMs });
          handleTimers(timers.onInput({ type: 'userActivity', atMs: d.atMs }));
          break;
        case 'speechEnded':
          observer.onEvent({ type: 'userSpeechEnded', atMs: d.atMs });
          // Sound that makes no turn (a cough) must not leave the idle clock stopped: it runs again from the end of
          // the sound, and the reply to a real turn stops it again.
          if (!turn) handleTimers(timers.onInput({ type: 'assistantFinished', atMs: d.atMs }));
          break;
        case 'finalize':
          stt?.finalize();
          break;
        case 'preemptive':
          if (!turn) startReply(d.text, { preemptive: true });
          break;
        case 'discardPreemptive':
          if (turn?.held) cancelTurn(turn, 'superseded');
          break;
        case 'endOfTurn':
          onUserTurn(d.text, 'speech', d.speechEndMs, d.sttFinalMs);
          break;
      }
    }
  }

  function handleInterruption(decisions: readonly InterruptionDecision[]): void {
    for (const d of decisions) {
      const current = turn;
      if (!current || current.id !== d.turnId || current.over) continue;
      const atMs = clock.now();
      switch (d.type) {
        case 'pause':
          current.pausedHeardMs = playout.pause();
          break;
        case 'resume':
          current.pausedHeardMs = undefined;
          playout.resume();
          break;
        case 'confirm':
          cancelTurn(current, 'interrupted');
          break;
      }
      observer.onEvent({ type: 'interruption', phase: d.type === 'pause' ? 'paused' : d.type === 'resume' ? 'resumed' : 'confirmed', turnId: d.turnId, atMs });
    }
  }

  function handleTimers(decisions: readonly CallTimerDecision[]): void {
    for (const d of decisions) {
      switch (d.type) {
        case 'reprompt': {
          const prompts = config.idle.reprompts;
          observer.onEvent({ type: 'idleReprompt', count: d.count, atMs: clock.now() });
          say(prompts[Math.min(d.count, prompts.length) - 1]!, 'reprompt');
          break;
        }
        case 'idleHangup':
          say(config.idle.hangupMessage, 'goodbye', 'idle-timeout');
          break;
        case 'maxDuration':
          say(config.goodbyeMessage, 'goodbye', 'max-duration');
          break;
      }
    }
  }

  // ---- user turns ----
  function onUserTurn(text: string, source: 'speech' | 'dtmf' | 'text', speechEndMs?: number, sttFinalMs?: number): void {
    const endOfTurnAt = clock.now();
    utteranceFinals = [];
    utteranceInterim = '';
    const current = turn;
    if (current && !current.over && !current.held) {
      // The assistant still holds the floor (the caller's words did not interrupt it: backchannel, echo,
      // or interruptions off). Backchannels and echo are dropped; anything else waits for its turn.
      if (interruption.phase !== 'idle' && config.interruption.enabled && source === 'speech') return;
      if (pendingUserText === undefined || source !== 'speech') pendingUserSource = source;
      pendingUserText = joinText([pendingUserText ?? '', text]);
      return;
    }
    observer.onEvent({ type: 'userMessage', text, atMs: endOfTurnAt, source });
    addUserMessage(text);
    if (current?.held) {
      if (sameWords(current.held.text, text)) {
        adoptPreemptive(current, speechEndMs, sttFinalMs, endOfTurnAt);
        return;
      }
      cancelTurn(current, 'superseded');
    }
    startReply(text, { speechEndMs, sttFinalMs, endOfTurnAt });
  }

  function addUserMessage(text: string): void {
    const last = history[history.length - 1];
    // A reply cut before the caller heard any of it leaves two user messages in a row: they are one turn.
    if (last?.role === 'user') history[history.length - 1] = { role: 'user', content: joinText([last.content, text]) };
    else history.push({ role: 'user', content: text });
  }

  function sameWords(a: string, b: string): boolean {
    const x = normalisedWords(a);
    const y = normalisedWords(b);
    return x.length === y.length && x.every((w, i) => w === y[i]);
  }

  // ---- assistant turns ----
  function newTurn(kind: AssistantTurnKind, hangupAfter?: string, tts?: { chain: readonly ResolvedProvider<TextToSpeech, TtsBlock>[]; cursor: ProviderCursor }): AssistantTurn {
    if (turn && !turn.over) cancelTurn(turn, 'superseded');
    const id = ++turnCounter;
    const metrics = newTurnMetrics(deps.callId, id, kind);
    const abort = new AbortController();
    const spoken = createSpokenText();
    const self: AssistantTurn = {
      id,
      kind,
      metrics,
      marks: {},
      abort,
      spoken,
      interruptible: kind !== 'goodbye',
      hangupAfter,
      ending: undefined,
      held: undefined,
      pausedHeardMs: undefined,
      over: false,
      output: createSpeechOutput({
        chain: tts?.chain ?? deps.tts,
        cursor: tts?.cursor ?? ttsCursor,
        channelFormat: channel.outputFormat,
        resamplers: deps.resamplers,
        clock,
        signal: abort.signal,
        spoken,
        metrics,
        onFrame: (frame) => {
          if (turn === self && !self.over && !playout.enqueue(id, frame)) reportOverflow(self);
        },
        onEnd: () => {
          if (turn === self && !self.over) playout.endInput(id);
        },
        onError: (provider, error, action) => reportError('tts', provider, error, action),
      }),
    };
    metrics.providers.stt = deps.stt[sttCursor.index]?.impl.id;
    turn = self;
    playout.begin(id);
    if (self.interruptible) interruption.onInput({ type: 'assistantActive', turnId: id, atMs: clock.now() });
    handleTimers(timers.onInput({ type: 'assistantStarted', atMs: clock.now() }));
    return self;
  }

  function reportOverflow(t: AssistantTurn): void {
    reportError('tts', t.metrics.providers.tts ?? 'tts', asProviderError('playout', new Error('turn audio exceeded output.maxBufferedMs; the rest was dropped')), 'ignored');
  }

  /** Speak fixed text (greeting, reprompt, fallback, goodbye): no LLM involved. */
  function say(text: string, kind: AssistantTurnKind, hangupAfter?: string): void {
    if (ended) return;
    // The prepared greeting plays from its recording; should it not match, the real TTS chain takes over.
    const prepared = kind === 'greeting' && deps.greetingTts ? { chain: [deps.greetingTts, ...deps.tts], cursor: { index: 0 } } : undefined;
    const t = newTurn(kind, hangupAfter, prepared);
    const filled = fillTemplate(text, variables);
    const chunker = createChunker();
    for (const piece of [...chunker.push(filled), ...chunker.flush()]) pushPiece(t, piece);
    t.output.end();
    reschedule();
  }

  function startReply(userText: string, opts: { preemptive?: boolean; speechEndMs?: number; sttFinalMs?: number; endOfTurnAt?: number }): void {
    if (ended) return;
    const t = newTurn('reply');
    t.metrics.userSpeechEnd = opts.speechEndMs;
    t.metrics.sttFinal = opts.sttFinalMs;
    t.marks.endOfTurnAt = opts.endOfTurnAt;
    if (opts.preemptive) {
      let release!: (adopted: boolean) => void;
      const released = new Promise<boolean>((r) => (release = r));
      t.held = { text: userText, pieces: [], messages: [], outcome: undefined, release, released };
      t.metrics.preemptive = true;
    }
    // While held, the caller's words go before the reply's own tool rounds (which join the history on adoption).
    const messages = () => (t.held ? [...history, { role: 'user' as const, content: userText }, ...t.held.messages] : history);
    const run = (context: ChatMessage | undefined) => runReply({
      chain: deps.llm,
      cursor: llmCursor,
      messages: () => withPassages(messages(), context),
      tools: deps.tools,
      maxToolRounds: config.maxToolRounds,
      signal: t.abort.signal,
      clock,
      metrics: t.metrics,
      marks: t.marks,
      onPiece: (piece) => speakPiece(t, piece),
      onMessage: (message) => {
        if (t.over) return;
        if (t.held) t.held.messages.push(message);
        else history.push(message);
      },
      onToolResult: (call, result) => observer.onEvent({ type: 'toolCall', id: call.id, name: call.name, arguments: call.arguments, result, atMs: clock.now() }),
      onError: (provider, error, action) => reportError('llm', provider, error, action),
      mayRunTools: () => (t.held ? t.held.released : Promise.resolve(!t.over)),
      stopAfterTools: () => t.ending !== undefined,
    });
    // Without knowledge bases the LLM request leaves at once, as before; with them, after the retrieval.
    const replying = knowledgeSources.length === 0 ? run(undefined) : retrieveFor(t, userText).then((context) => (t.over ? ('cancelled' as const) : run(context)));
    replying
      .then((outcome) => {
        if (t.over || turn !== t) return;
        // A held reply waits for the end of the turn, even to fail: the caller may still be speaking.
        if (t.held) t.held.outcome = outcome;
        else finishReply(t, outcome);
      })
      .catch((error) => {
        reportError('llm', t.metrics.providers.llm ?? 'llm', asProviderError('engine', error), 'ignored');
        // Whatever threw (retrieval, a passage without a source, ...), the caller must not be left in silence.
        if (!t.over && turn === t && !t.held) finishReply(t, 'failed');
      });
  }

  // ---- knowledge retrieval (shared/engine/retrieval.ts) ----
  function resolveKnowledge() {
    if (!deps.knowledge) return [];
    try {
      return retrievalSources(config, deps.knowledge(config));
    } catch (error) {
      observer.onEvent({ type: 'providerError', stage: 'llm', provider: 'knowledge', error: asProviderError('knowledge', error), action: 'ignored' });
      return [];
    }
  }

  /** The passages for this turn as a system message; metrics record latency, hits and a blown budget. */
  async function retrieveFor(t: AssistantTurn, query: string): Promise<ChatMessage | undefined> {
    const result = await retrieve(knowledgeSources, query, { clock, budgetMs: deps.retrievalBudgetMs, signal: t.abort.signal });
    t.metrics.retrievalMs = result.latencyMs;
    t.metrics.retrievalHits = result.passages.length;
    if (result.timedOut) t.metrics.retrievalTimedOut = true;
    for (const f of result.failures) {
      // One label value for every knowledge base (ids are per tenant: unbounded series); the id is in the message.
      const error = asProviderError('knowledge', f.error);
      reportError('llm', 'knowledge', new ProviderError(error.code, `knowledge base ${f.knowledgeBaseId}: ${error.message.replace(/^[A-Z0-9_]+: /, '')}`, error.retryable, error.kind, { cause: f.error }), 'ignored');
    }
    return passagesMessage(result.passages);
  }

  function finishReply(t: AssistantTurn, outcome: ReplyOutcome): void {
    if (outcome === 'failed') say(config.fallbackMessage, 'fallback');
    else if (outcome === 'done') t.output.end();
  }

  async function speakPiece(t: AssistantTurn, piece: string): Promise<void> {
    if (t.over) return;
    if (t.held) {
      t.held.pieces.push(piece);
      return;
    }
    // Back-pressure: a fast LLM must not pile up minutes of audio; wait while playout is far ahead.
    while (!t.over && playout.bufferedAheadMs() > config.output.maxBufferedMs / 2) {
      await new Promise<void>((r) => clock.setTimeout(r, BACKPRESSURE_POLL_MS));
    }
    if (!t.over) pushPiece(t, piece);
  }

  /** A piece of the reply goes to speech: listeners (captions) see its text as it is sent. */
  function pushPiece(t: AssistantTurn, piece: string): void {
    observer.onEvent({ type: 'assistantText', turnId: t.id, text: piece, atMs: clock.now() });
    t.output.push(piece);
  }

  function adoptPreemptive(t: AssistantTurn, speechEndMs: number | undefined, sttFinalMs: number | undefined, endOfTurnAt: number): void {
    const held = t.held!;
    t.held = undefined;
    held.release(true);
    t.metrics.userSpeechEnd = speechEndMs;
    t.metrics.sttFinal = sttFinalMs;
    t.marks.endOfTurnAt = endOfTurnAt;
    // The caller's message is in the history now: the reply's tool rounds follow it.
    history.push(...held.messages);
    for (const piece of held.pieces) pushPiece(t, piece);
    if (held.outcome) finishReply(t, held.outcome);
    reschedule();
  }

  /** Stop a turn: cancel LLM and TTS, drop unplayed audio, record what the caller heard. */
  function cancelTurn(t: AssistantTurn, why: 'interrupted' | 'superseded' | 'ended'): void {
    if (t.over) return;
    t.over = true;
    const heardMs = t.pausedHeardMs ?? playout.heardMs();
    if (turn === t) playout.cancel();
    t.abort.abort();
    t.output.cancel();
    interruption.onInput({ type: 'assistantIdle', turnId: t.id, atMs: clock.now() });
    if (t.held) {
      t.held.release(false);
      if (turn === t) turn = undefined;
      return; // Never spoken: nothing to record.
    }
    const heard = t.spoken.heardText(heardMs);
    t.metrics.interrupted = why !== 'superseded' || heard !== t.spoken.fullText();
    if (heard) recordAssistant(t, heard, t.metrics.interrupted);
    if (t.ending && why === 'interrupted') {
      // The caller spoke before the call could end: it goes on, and the model must not believe it ended.
      history.push({ role: 'system', content: `The caller interrupted before the ${t.ending.kind === 'transfer' ? 'transfer' : 'end of the call'}; the call continues. Answer the caller.` });
    }
    emitMetrics(t);
    if (turn === t) turn = undefined;
  }

  function completeTurn(t: AssistantTurn, atMs: number): void {
    if (t.over) return;
    t.over = true;
    // Only what was voiced: pieces a failed TTS never spoke were not heard.
    const text = t.spoken.voicedText();
    if (text) recordAssistant(t, text, false);
    emitMetrics(t);
    interruption.onInput({ type: 'assistantIdle', turnId: t.id, atMs });
    turn = undefined;
    if (t.ending) return endAfterTool(t.ending);
    if (t.hangupAfter || ttsExhausted) {
      void closeLine(t.hangupAfter ?? 'tts-unavailable');
      return;
    }
    handleTimers(timers.onInput({ type: 'assistantFinished', atMs }));
    if (pendingUserText) {
      const text = pendingUserText;
      pendingUserText = undefined;
      onUserTurn(text, pendingUserSource);
    }
    reschedule();
  }

  function recordAssistant(t: AssistantTurn, text: string, interrupted: boolean): void {
    previousTurnWords = normalisedWords(text);
    history.push(interrupted ? { role: 'assistant', content: text, interrupted: true } : { role: 'assistant', content: text });
    observer.onEvent({ type: 'assistantMessage', turnId: t.id, text, generatedText: t.spoken.fullText(), interrupted, atMs: clock.now() });
  }

  function emitMetrics(t: AssistantTurn): void {
    observer.onEvent({ type: 'turnMetrics', metrics: completeTurnMetrics(t.metrics, t.marks) });
  }

  function reportError(stage: Stage, provider: string, error: ProviderError, action: 'retry' | 'fallback' | 'fallbackMessage' | 'ignored'): void {
    if (ended) return; // Late failures of a finished call (a VAD or STT settling after the end) are noise.
    if (stage === 'tts' && action === 'ignored' && ttsCursor.index >= deps.tts.length) ttsExhausted = true;
    observer.onEvent({ type: 'providerError', stage, provider, error, action });
  }

  // ---- end_call / transfer_call: the tool's message (not interruptible), then hang up or transfer ----
  let transferTarget: string | undefined;
  function endAfterTool(ending: CallEnding): void {
    const reason = ending.kind === 'transfer' ? 'transferred' : ending.reason;
    if (ending.kind === 'transfer') transferTarget = ending.to;
    if (ending.message.trim()) say(ending.message, 'goodbye', reason);
    else void closeLine(reason);
  }

  /** A transfer that fails leaves the caller with us: they hear the fallback message and the call goes on. */
  async function closeLine(reason: string): Promise<void> {
    const to = transferTarget;
    if (reason !== 'transferred' || to === undefined || !channel.transfer) return hangup(reason);
    transferTarget = undefined;
    try {
      await channel.transfer(to);
    } catch (error) {
      reportError('llm', 'transfer_call', asProviderError('transfer_call', error), 'fallbackMessage');
      say(config.fallbackMessage, 'fallback');
      reschedule();
      return;
    }
    // The carrier has the caller now: our side stops without hanging up the line.
    await finish('transferred', false);
  }

  // ---- DTMF ----
  function onDtmf(digit: string): void {
    if (ended || config.dtmf.mode === 'ignore') return;
    const now = clock.now();
    handleTimers(timers.onInput({ type: 'userActivity', atMs: now }));
    handleInterruption(interruption.onInput({ type: 'dtmf', atMs: now }));
    const digits = dtmf.press(digit, now);
    if (digits) submitDtmf(digits);
    reschedule();
  }

  function submitDtmf(digits: string): void {
    observer.onEvent({ type: 'dtmf', digits, atMs: clock.now() });
    onUserTurn(fillTemplate(config.dtmf.template, { digits }), 'dtmf');
  }

  // ---- typed input ----
  /**
   * A typed message is a whole user turn; typing is deliberate, so it cuts an interruptible reply at once
   * (with interruptions off it waits for the reply to end, like speech).
   */
  function onText(text: string): void {
    const words = text.trim();
    if (ended || !words) return;
    const now = clock.now();
    handleTimers(timers.onInput({ type: 'userActivity', atMs: now }));
    const current = turn;
    if (current && !current.over && !current.held && current.interruptible && config.interruption.enabled) {
      observer.onEvent({ type: 'interruption', phase: 'confirmed', turnId: current.id, atMs: now });
      cancelTurn(current, 'interrupted');
    }
    onUserTurn(words, 'text');
    reschedule();
  }

  // ---- lifecycle ----
  /** End from our side: stop everything, then hang up the line (a failing carrier changes nothing for us). */
  async function hangup(reason: string): Promise<void> {
    await finish(reason, true);
  }

  async function finish(reason: string, hangUpLine: boolean): Promise<void> {
    if (ended) return;
    if (turn) cancelTurn(turn, 'ended');
    ended = true;
    if (timer !== undefined) clock.clearTimeout(timer);
    playout.close();
    const session = stt;
    stt = undefined;
    sttGeneration++;
    const unused = earlyStt;
    earlyStt = undefined;
    try {
      await Promise.all([session?.close(), unused?.close()]);
    } catch {
      // The call is over; a provider that fails to close cleanly changes nothing for the caller.
    }
    deps.vad.close();
    if (hangUpLine) {
      try {
        await channel.hangup(reason);
      } catch {
        // The carrier refused or the line is already gone: the call is over for us either way.
      }
    }
    observer.onEvent({ type: 'callEnded', callId: deps.callId, reason, atMs: clock.now() });
    resolveEnded(reason);
  }

  return {
    history,
    ended: endedPromise,
    end: hangup,
    sendText: onText,
    async start() {
      const now = clock.now();
      observer.onEvent({ type: 'callStarted', callId: deps.callId, atMs: now });
      handleTimers(timers.onInput({ type: 'callStarted', atMs: now }));
      await openStt();
      channel.start({
        onAudio,
        onDtmf,
        onMark: (name) => playout.onMark(name),
        // The far end is gone: nothing to hang up.
        onClose: (reason) => void finish(reason, false),
      });
      if (config.greeting && wordCount(config.greeting) > 0) say(config.greeting, 'greeting');
      else handleTimers(timers.onInput({ type: 'assistantFinished', atMs: now }));
      reschedule();
    },
  };
}
