import type { ResamplerFactory } from '../shared/audio/resampler';
import { CallCounters } from '../shared/cache/call-counters';
import { NodeRegistry } from '../shared/cache/node-registry';
import { systemClock, type Clock } from '../shared/contracts/clock';
import { ConfigError } from '../shared/contracts/errors';
import type { CallObserver } from '../shared/contracts/observer';
import type { ProviderRegistry } from '../shared/providers/registry';
import { MEDIA_CLOSE_CODES, mediaCloseCode } from '../shared/store/call-contexts';
import { StoreError } from '../shared/store/errors';
import { MULAW_8K } from '../shared/audio/format';
import type { VadFactories } from '../shared/vad/select';
import { createApp } from '../edge/app';
import { ApiError } from '../edge/errors';
import { callRoutes } from '../edge/routes/calls';
import { twilioRoutes, type TwilioRouteDeps } from '../edge/routes/twilio';
import { vonageRoutes } from '../edge/routes/vonage';
import { exotelRoutes } from '../edge/routes/exotel';
import { webSessionRoutes } from '../edge/routes/web-session';
import { asteriskRoutes } from '../edge/routes/asterisk';
import { internalRoutes } from './internal-routes';
import { localDemoKeys } from './demo-keys';
import { demoPageRoutes, widgetAssetRoutes } from './widget-assets';
import { Hono } from 'hono';
import { prepareCall, prewarmGreeting, prewarmStt, startCallSession, type CallRuntime, type PreparedCall } from './call-session';
import type { EarlyStt, RecordedSpeech } from '../shared/engine/prewarm';
import { createCarrierChannel } from './channels/carrier-channel';
import { CARRIER_MEDIA, resolveCarrierMediaUrl, type CarrierMedia } from './channels/carriers';
import { wsCarrierLink } from './channels/ws-link';
import type { CarrierLink } from '../shared/telephony/carrier';
import { audioSocketPort, mediaBaseUrl, publicBaseUrl, rtpPortRange, sipPort, sipPublicIp } from './config/env';
import { startSipServer, type SipServer, type SipServerOptions } from './sip/sip-server';
import { startAudioSocketServer } from './channels/audiosocket-server';
import { createHealthService } from './grpc/health';
import { startListener, type Listener } from './listener';
import { createNodeMetrics, type NodeMetrics } from './metrics';
import { toolAllowList, withTransfer } from './tools/call-tools';
import { createAssistantTalkHandler } from './talk/grpc-talk';
import { rawTalkServiceDefinition } from './talk/grpc-transport';
import { createTalkHost } from './talk/talk-host';
import { serveTalkWebSocket, WEB_TALK_PATH } from './talk/ws-talk';
import type { NodeRuntime } from './node';
import * as grpc from '@grpc/grpc-js';

export interface MediaServerOptions {
  readonly node: NodeRuntime;
  readonly registry: ProviderRegistry;
  readonly vads: VadFactories;
  readonly resamplers: ResamplerFactory;
  readonly clock?: Clock;
  readonly observers?: readonly CallObserver[];
  /** Provider keys from the environment (`<PROVIDER>_API_KEY`). */
  readonly providerEnv?: Readonly<Record<string, string | undefined>>;
  /** A cloud provider without any credential is served by the registered `local` engine. */
  readonly localFallback?: boolean;
  /** The node's Prometheus metrics, when the caller made them (to hand `providers` to adapters); else created here. */
  readonly metrics?: NodeMetrics;
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  readonly version?: string;
  /** Twilio REST hosts a credential's apiBaseUrl may name (default: https Twilio hosts only; tests allow a fake). */
  readonly allowTwilioApiBaseUrl?: (url: string) => boolean;
  /** Vonage REST hosts a credential's apiBaseUrl may name (default: https Vonage API hosts only; tests allow a fake). */
  readonly allowVonageApiBaseUrl?: (url: string) => boolean;
  /** Exotel REST hosts a credential's apiBaseUrl may name (default: https Exotel API hosts only; tests allow a fake). */
  readonly allowExotelApiBaseUrl?: (url: string) => boolean;
  /** How long a talk call (browser/SDK) waits for a dropped client to resume; at most the store's 30 s (tests shorten it). */
  readonly talkResumeWindowMs?: number;
  /** SIP timers and host resolution (tests shorten T1 and pin trunk hosts). */
  readonly sip?: Pick<SipServerOptions, 'timers' | 'resolveHost' | 'answerDelayMs'>;
}

const START_TIMEOUT_MS = 10_000;
const HEARTBEAT_MS = 5_000;
const PREWARM_TTL_MS = 120_000;
const PREWARM_WAIT_MS = 1_500;
/** A call prepared by the webhook's check is reused by its pre-warm only this soon after (credentials may change). */
const PREPARED_TTL_MS = 5_000;
/** WebSocket liveness: ws sends no pings of its own, and a dead browser must count as a drop well within the resume window. */
const WEB_SOCKET_PING_MS = 20_000;

/**
 * The media node's network face: one port for the HTTP app (REST, webhooks, /metrics), the carriers' media
 * WebSockets and gRPC. Registers itself in the cache registry and answers 503 to new calls when full or
 * draining.
 */
export async function startMediaServer(options: MediaServerOptions) {
  const { node } = options;
  const env = node.env;
  const log = options.log ?? (() => undefined);
  const metrics = options.metrics ?? createNodeMetrics();
  const health = createHealthService();
  const calls = new Map<string, Promise<void>>();
  let draining = false;
  // Bound once listening; the public URL defaults to the port actually bound (PORT=0 in tests).
  const bound: { listener?: Listener } = {};

  // TOOL_HTTP_ALLOW is read per call; a typo in it must stop start-up, not the first call with tools.
  toolAllowList(options.providerEnv);
  const runtime: CallRuntime = {
    node,
    registry: options.registry,
    vads: options.vads,
    resamplers: options.resamplers,
    clock: options.clock ?? systemClock,
    env: options.providerEnv,
    localFallback: options.localFallback,
    ...(options.allowTwilioApiBaseUrl ? { allowTwilioApiBaseUrl: options.allowTwilioApiBaseUrl } : {}),
    observers: [metrics.observer, ...(options.observers ?? [])],
  };
  /** Greetings synthesised while the phone rings, by context id (dropped when claimed or after 2 minutes). */
  type Prewarmed = { prepared: PreparedCall; greeting: RecordedSpeech | undefined; stt: EarlyStt | undefined };
  const prewarmed = new Map<string, Promise<Prewarmed | undefined>>();
  /** Calls prepared by the webhook's callable check, for its pre-warm a moment later (by project/assistant/version). */
  const recentlyPrepared = new Map<string, PreparedCall>();
  const preparedKey = (c: { projectId: string; assistantId: string; assistantVersion: number }) => `${c.projectId}/${c.assistantId}/${c.assistantVersion}`;
  const releaseWarm = (warm: Prewarmed | undefined) => void warm?.stt?.close().catch(() => undefined);
  const counters = new CallCounters(node.cache);
  const nodeRegistry = new NodeRegistry(node.cache);
  const nodeId = env.NODE_ID ?? `node-${crypto.randomUUID().slice(0, 8)}`;
  const base = () => publicBaseUrl(env, bound.listener?.port ?? env.PORT);

  const readiness = async () => {
    const report = await node.readiness();
    if (!draining) return report;
    return { ready: false, checks: { ...report.checks, draining: { ok: false, latencyMs: 0, error: 'the node is draining: it takes no new calls' } } };
  };

  /** Warms up a call this node will carry (greeting, STT) while the phone rings; also what `POST /internal/prewarm` runs. */
  const prewarmHere = (contextId: string): void => {
    const warming = (async () => {
      const context = await node.stores.callContexts.get(contextId);
      if (!context) return undefined;
      const key = preparedKey(context);
      const prepared = recentlyPrepared.get(key) ?? (await prepareCall(runtime, context));
      recentlyPrepared.delete(key);
      // Both at once, each optional: a failure of one leaves the other's head start (and the call goes live).
      const [greeting, stt] = await Promise.all([
        prewarmGreeting(runtime, context, CARRIER_MEDIA.get(context.provider)?.outputFormat ?? MULAW_8K, prepared).catch((error: unknown) => {
          log('warn', 'pre-warm: the greeting will be synthesised live', { contextId, error: String(error) });
          return undefined;
        }),
        prewarmStt(prepared).catch((error: unknown) => {
          log('warn', 'pre-warm: STT will connect when the call starts', { contextId, error: String(error) });
          return undefined;
        }),
      ]);
      return { prepared, greeting, stt };
    })().catch((error: unknown) => {
      log('warn', 'pre-warm failed; the call will set up live', { contextId, error: String(error) });
      return undefined;
    });
    prewarmed.set(contextId, warming);
    setTimeout(() => {
      // The carrier never connected: drop what was prepared (an open STT socket costs money).
      if (prewarmed.get(contextId) === warming) {
        prewarmed.delete(contextId);
        void warming.then(releaseWarm);
      }
    }, PREWARM_TTL_MS).unref();
  };

  // Shared by the inbound webhook and POST /v1/calls (outbound): the same admission, checks and pre-warm.
  const callDeps: TwilioRouteDeps = {
    stores: node.stores,
    get publicBaseUrl() {
      return base();
    },
    // On a node the choice is always this node; the edge picks one from the registry (edge/media-nodes.ts).
    chooseMediaNode: async () => ({ mediaBaseUrl: mediaBaseUrl(base()), prewarm: prewarmHere }),
    async checkCallable(call) {
      try {
        const prepared = await prepareCall(runtime, call);
        // The pre-warm that follows the webhook's answer uses this one (no second round of lookups).
        const key = preparedKey(call);
        recentlyPrepared.set(key, prepared);
        setTimeout(() => recentlyPrepared.get(key) === prepared && recentlyPrepared.delete(key), PREPARED_TTL_MS).unref();
        for (const [stage, chain] of [['stt', prepared.stt], ['llm', prepared.llm], ['tts', prepared.tts]] as const) {
          for (const p of chain) {
            if (p.substitutedFor) log('info', `no credential for ${stage} provider "${p.substitutedFor}": the local engine stands in`, { assistantId: call.assistantId });
          }
        }
        return undefined;
      } catch (error) {
        if (error instanceof ConfigError || error instanceof StoreError) {
          log('warn', 'assistant cannot take calls', { assistantId: call.assistantId, error: error.message });
          return error.message.replace(/^[A-Z_]+: /, '');
        }
        throw error;
      }
    },
    async admitCall(projectId) {
      if (draining || calls.size >= env.CAPACITY) return false;
      if (env.PROJECT_CALL_LIMIT === 0) return true;
      return (await counters.activeCount(projectId)) < env.PROJECT_CALL_LIMIT;
    },
  };
  // Browser and SDK calls (talk_api over WebSocket and gRPC): counted and drained like phone calls.
  const talk = createTalkHost({
    contexts: node.stores.callContexts,
    startCall: (context, channel, observer) => startCallSession(runtime, context, channel, { observer }),
    resamplers: options.resamplers,
    clock: runtime.clock!,
    ...(options.talkResumeWindowMs !== undefined ? { resumeWindowMs: options.talkResumeWindowMs } : {}),
    log,
    onProtocolError: () => metrics.malformedFrame('web'),
    async holdCall(context, finished) {
      // The lease first: a cache failure here must not leave a slot held by a call that never ran.
      if (env.PROJECT_CALL_LIMIT > 0) await counters.acquire(context.projectId, context.id, env.PROJECT_CALL_LIMIT);
      calls.set(context.id, finished);
      return () => {
        calls.delete(context.id);
        if (env.PROJECT_CALL_LIMIT > 0) void counters.release(context.projectId, context.id).catch(() => false);
      };
    },
  });
  const webSessions = webSessionRoutes({
    stores: node.stores,
    webSocketBaseUrl: () => mediaBaseUrl(base()),
    checkCallable: (call) => callDeps.checkCallable!(call),
    admitCall: (projectId) => callDeps.admitCall!(projectId),
  });
  const appLog = {
    info: (message: string, fields?: Readonly<Record<string, unknown>>) => log('info', message, fields),
    warn: (message: string, fields?: Readonly<Record<string, unknown>>) => log('warn', message, fields),
    error: (message: string, fields?: Readonly<Record<string, unknown>>) => log('error', message, fields),
  };
  const telephony = twilioRoutes(callDeps);
  /** Set once the SIP server listens (it needs the call loop defined below). */
  const sipCalls: { place?: SipServer['placeCall'] } = {};
  const outboundCalls = callRoutes(callDeps, {
    log: appLog,
    placeSipCall: (call) => {
      if (!sipCalls.place) throw new ApiError(400, 'SIP_NOT_AVAILABLE', 'SIP is off on this node (SIP_PORT=off)');
      return sipCalls.place(call);
    },
    ...(options.allowTwilioApiBaseUrl ? { allowApiBaseUrl: options.allowTwilioApiBaseUrl } : {}),
    ...(options.allowVonageApiBaseUrl ? { allowVonageApiBaseUrl: options.allowVonageApiBaseUrl } : {}),
    ...(options.allowExotelApiBaseUrl ? { allowExotelApiBaseUrl: options.allowExotelApiBaseUrl } : {}),
  });
  const metricsRoute = new Hono();
  metricsRoute.get('/', async (c) => c.body(await metrics.metricsText(), 200, { 'Content-Type': metrics.contentType }));

  const app = createApp(
    {
      stores: node.stores,
      ...(node.knowledgeIndex ? { knowledgeIndex: node.knowledgeIndex } : {}),
      readiness,
      get publicBaseUrl() {
        return base();
      },
      log: appLog,
    },
    {
      extraRoutes: [
        { path: '/v1/talk/twilio', routes: telephony },
        { path: '/v1/talk/vonage', routes: vonageRoutes(callDeps) },
        // Exotel signs nothing: Basic credentials and the optional allow-list check the socket peer's address.
        { path: '/v1/talk/exotel', routes: exotelRoutes(callDeps, { clientAddress: (c) => (c.env as { remoteAddress?: string } | undefined)?.remoteAddress }) },
        { path: '/v1/talk/web', routes: webSessions },
        // Asterisk's dialplan CURL()s a call context here before connecting (chan_websocket or AudioSocket).
        { path: '/v1/talk/asterisk', routes: asteriskRoutes(callDeps) },
        { path: '/v1/calls', routes: outboundCalls },
        // The edge asks the node it chose to warm a call up while the phone rings (HMAC-signed, INTERNAL_SECRET).
        { path: '/internal', routes: internalRoutes({ internalSecret: node.secrets.internalSecret, prewarm: prewarmHere, log: appLog }) as never },
        { path: '/metrics', routes: metricsRoute as never },
        // The browser widget (`<script src=".../widget.js">`) and the demo page `npm start` opens.
        { path: '/', routes: widgetAssetRoutes({ log }) },
        { path: '/', routes: demoPageRoutes({ log, demoKeys: localDemoKeys(node.stores.projects, { embedded: !env.DATABASE_URL && env.DEMO_LOCAL_KEYS === 'on' }) }) },
      ],
    },
  );

  /**
   * One carrier call on this node, whatever the carrier: claim the context once, wait for the carrier's start
   * message, start the engine (with what the pre-warm prepared), and record how the call ended.
   */
  async function runCarrierMedia(media: CarrierMedia, contextId: string, link: CarrierLink): Promise<void> {
    // The carrier sends its first messages as soon as the link opens; a message emitted before the channel
    // listens would be lost (then "no start message" under load), so they stay unread until then.
    link.pause();
    const existing = await node.stores.callContexts.get(contextId);
    if (existing && existing.provider !== media.provider) {
      // Another carrier's context (or a browser session's) is not this stream's to claim.
      log('warn', 'media connection refused: the context belongs to another channel', { contextId, provider: media.provider, contextProvider: existing.provider });
      link.resume();
      link.close(MEDIA_CLOSE_CODES.unknownContext, 'unknown');
      return;
    }
    const claim = await node.stores.callContexts.claim(contextId);
    if (claim.outcome !== 'claimed') {
      const code = mediaCloseCode(claim) ?? 4404;
      log('warn', 'media connection refused', { contextId, outcome: claim.outcome, code });
      link.resume();
      link.close(code, claim.outcome);
      return;
    }
    const context = claim.context;
    // Exotel's chunking needs a link of its own around the transport (CarrierMedia.connect).
    const wired = media.connect ? media.connect(link) : { codec: media.codec(), link };
    const carrier = createCarrierChannel({
      id: contextId,
      codec: wired.codec,
      link: wired.link,
      resamplers: options.resamplers,
      onProtocolError: (code, message) => {
        metrics.malformedFrame(media.provider);
        log('warn', 'malformed media frame', { contextId, provider: media.provider, code, message });
      },
    });
    link.resume();
    const started = await Promise.race([carrier.started, new Promise<undefined>((r) => setTimeout(() => r(undefined), START_TIMEOUT_MS))]);
    if (!started) {
      log('warn', 'no start message on the media stream', { contextId });
      link.close(1008, 'no start message');
      const warming = prewarmed.get(contextId);
      prewarmed.delete(contextId);
      void warming?.then(releaseWarm);
      await node.stores.callContexts.updateStatus(contextId, { status: 'failed', failureReason: 'media stream never started' }, 'claimed');
      return;
    }
    // The media flows: the call is in progress (a carrier's own status callback may already have said so).
    await node.stores.callContexts
      .updateStatus(contextId, { callStatus: 'in-progress' }, { status: 'claimed', callStatus: ['queued', 'ringing'] })
      .catch((error: unknown) => log('warn', 'call status not recorded', { contextId, error: String(error) }));
    let finished: Promise<string>;
    try {
      // Inside the try: a cache failure fails this call cleanly (1011, context failed) instead of leaving it claimed.
      if (env.PROJECT_CALL_LIMIT > 0) await counters.acquire(context.projectId, contextId, env.PROJECT_CALL_LIMIT);
      // A greeting still being synthesised is waited for briefly; past that the call starts and speaks it live
      // (the caller must not sit in silence behind a slow TTS).
      const warming = prewarmed.get(contextId);
      prewarmed.delete(contextId);
      const warm = await Promise.race([warming, new Promise<undefined>((r) => setTimeout(() => r(undefined), PREWARM_WAIT_MS))]);
      // Too slow to wait for: whatever it still opens is closed, not leaked.
      if (!warm) void warming?.then(releaseWarm);
      try {
        const channel = media.transfer ? withTransfer(carrier.channel, media.transfer) : carrier.channel;
        const communication = await startCallSession(runtime, context, channel, { prepared: warm?.prepared, greeting: warm?.greeting, earlyStt: warm?.stt });
        finished = communication.ended;
      } catch (error) {
        releaseWarm(warm);
        throw error;
      }
    } catch (error) {
      log('error', 'call could not start', { contextId, error: (error as Error).message });
      link.close(1011, 'call could not start');
      // Carriers without status callbacks (Asterisk, SIP) would otherwise keep the call `in-progress` for ever.
      const callStatus = media.endsWithMedia ? { callStatus: 'failed' as const } : {};
      await node.stores.callContexts.updateStatus(contextId, { status: 'failed', failureReason: (error as Error).message, ...callStatus }, 'claimed').catch(() => undefined);
      if (env.PROJECT_CALL_LIMIT > 0) await counters.release(context.projectId, contextId).catch(() => false);
      return;
    }
    // The map holds the whole call including its bookkeeping and is emptied before that promise settles:
    // a drain awaiting it never finds a settled entry (which would spin it in microtasks, starving I/O).
    const done = finished
      .then(async (reason) => {
        if (carrier.stats.droppedEarly > 0) log('warn', 'caller audio dropped while the call was starting', { contextId, frames: carrier.stats.droppedEarly });
        if (carrier.stats.protocolErrors > 0) log('warn', 'malformed media frames during the call', { contextId, count: carrier.stats.protocolErrors });
        // Carriers that send status callbacks (Twilio, Vonage, Exotel) finish the call status themselves; Asterisk
        // and SIP send none, so the end of their media is the end of the call.
        const callStatus = media.endsWithMedia ? { callStatus: 'completed' as const } : {};
        await node.stores.callContexts.updateStatus(contextId, { status: 'completed', disconnectReason: reason, ...callStatus }, 'claimed');
      })
      .catch((error: unknown) => log('error', 'call end bookkeeping failed', { contextId, error: String(error) }))
      .finally(async () => {
        calls.delete(contextId);
        if (env.PROJECT_CALL_LIMIT > 0) await counters.release(context.projectId, contextId).catch(() => false);
      });
    calls.set(contextId, done);
  }

  const grpcServer = new grpc.Server();
  health.addToServer(grpcServer);
  grpcServer.addService(rawTalkServiceDefinition, {
    AssistantTalk: createAssistantTalkHandler({
      stores: node.stores,
      host: talk,
      log,
      checkCallable: (call) => callDeps.checkCallable!(call),
      admitCall: (projectId) => callDeps.admitCall!(projectId),
    }),
  });
  const listener = await startListener({
    port: env.PORT,
    host: env.HOST,
    // The peer address reaches routes as Hono's `c.env` (Exotel's IP allow-list).
    fetch: (request, info) => app.fetch(request, { remoteAddress: info.remoteAddress }),
    grpcServer,
    log,
    webSocketPingIntervalMs: WEB_SOCKET_PING_MS,
    onUpgrade(request, accept, reject) {
      const web = WEB_TALK_PATH.exec(request.url.pathname);
      if (web) {
        const contextId = safeDecode(web[1]!);
        if (contextId === undefined) return reject(400, 'the context id in the path is not valid percent-encoding');
        return accept().then((ws) => serveTalkWebSocket(talk, contextId, ws), (error: unknown) => log('warn', 'talk WebSocket handshake failed', { error: String(error) }));
      }
      // `/v1/talk/{provider}/ctx/{id}`, or `?contextId=` where the carrier can only append parameters (Asterisk).
      const target = resolveCarrierMediaUrl(request.url);
      if ('refused' in target) return reject(target.refused, target.reason);
      const { media, contextId } = target;
      return accept()
        .then((ws) => runCarrierMedia(media, contextId, wsCarrierLink(ws)))
        .catch((error: unknown) => log('error', 'media session failed', { provider: media.provider, error: String(error) }));
    },
  });

  bound.listener = listener;
  // Asterisk AudioSocket (TCP): the same carrier call loop, reached by the UUID frame instead of a URL.
  const audioSocketAt = audioSocketPort(env);
  const audioSocket =
    audioSocketAt === undefined
      ? undefined
      : await startAudioSocketServer({
          port: audioSocketAt,
          host: env.HOST,
          run: runCarrierMedia,
          log,
          onProtocolError: (code, message) => {
            metrics.malformedFrame('asterisk');
            log('warn', 'malformed AudioSocket frame', { code, message });
          },
        }).catch(async (error: unknown) => {
          await listener.close({ drainMs: 0 });
          grpcServer.forceShutdown();
          throw new ConfigError('AUDIOSOCKET_LISTEN', `cannot listen for AudioSocket on ${env.HOST}:${audioSocketAt} (${(error as Error).message}): set AUDIOSOCKET_PORT to a free port, or off`);
        });
  // Direct SIP (UDP) and its RTP ports: the same carrier call loop, reached by an INVITE to a number.
  const sipAt = sipPort(env);
  const sipStores = node.stores.sip;
  let sip: SipServer | undefined;
  if (sipAt !== undefined && sipStores) {
    try {
      sip = await startSipServer({
        host: env.HOST,
        port: sipAt,
        publicIp: sipPublicIp(env),
        rtpPorts: rtpPortRange(env),
        rtpTimeoutMs: env.SIP_RTP_TIMEOUT_MS,
        stores: { ...node.stores, sip: sipStores },
        nonceSecret: new TextEncoder().encode(`sip-nonce:${node.secrets.internalSecret}`),
        // Calls still ringing hold no slot in `calls` yet: counted here, so a burst of INVITEs cannot overfill the node.
        admitCall: async (projectId, ringing) => calls.size + ringing < env.CAPACITY && callDeps.admitCall!(projectId),
        checkCallable: (call) => callDeps.checkCallable!(call),
        prewarm: prewarmHere,
        run: runCarrierMedia,
        log,
        onProtocolError: () => metrics.malformedFrame('sip'),
        ...(options.sip?.timers ? { timers: options.sip.timers } : {}),
        ...(options.sip?.resolveHost ? { resolveHost: options.sip.resolveHost } : {}),
        ...(options.sip?.answerDelayMs ? { answerDelayMs: options.sip.answerDelayMs } : {}),
      });
    } catch (error) {
      await Promise.all([listener.close({ drainMs: 0 }), audioSocket?.close(0)]);
      grpcServer.forceShutdown();
      if (error instanceof ConfigError) throw error;
      throw new ConfigError('SIP_LISTEN', `cannot listen for SIP on ${env.HOST}:${sipAt} (${(error as Error).message}): set SIP_PORT to a free port, or off`);
    }
  }
  sipCalls.place = sip?.placeCall;
  const info = () => ({ id: nodeId, url: base(), region: env.REGION, capacity: draining ? 0 : env.CAPACITY, active: calls.size, version: options.version ?? 'dev' });
  await nodeRegistry.register(info());
  const heartbeat = setInterval(() => {
    nodeRegistry.heartbeat(info()).catch((error: unknown) => log('warn', 'heartbeat failed', { error: String(error) }));
  }, HEARTBEAT_MS);
  heartbeat.unref();

  return {
    port: listener.port,
    /** The AudioSocket TCP port bound (undefined when AUDIOSOCKET_PORT=off). */
    audioSocketPort: audioSocket?.port,
    /** The SIP server (undefined when SIP_PORT=off): its UDP port, dialogs, RTP ports in use. */
    sip,
    url: listener.url,
    publicBaseUrl: base,
    nodeId,
    get activeCalls() {
      return calls.size;
    },
    /** Talk sessions held (running calls, and connections still initializing). */
    get talkSessions() {
      return talk.size;
    },
    metrics,
    /** SIGTERM: stop taking calls (503, readiness false, gRPC NOT_SERVING), let running calls end, then close. */
    async drain(timeoutMs = env.DRAIN_TIMEOUT_MS): Promise<void> {
      draining = true;
      health.markDraining();
      await nodeRegistry.drain(info()).catch(() => undefined);
      const deadline = Date.now() + timeoutMs;
      while (calls.size > 0 && Date.now() < deadline) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([Promise.allSettled([...calls.values()]), new Promise((r) => (timer = setTimeout(r, Math.max(0, Math.min(1000, deadline - Date.now())))))]);
        clearTimeout(timer);
        // Whatever settled, let I/O run before looking again (never a microtask-only loop).
        await new Promise((r) => setImmediate(r));
      }
      // Talk calls still running at the deadline are ended and recorded, not left waiting for a resume.
      await talk.endAll('node-shutdown');
      await this.close();
    },
    async close(): Promise<void> {
      clearInterval(heartbeat);
      // Cut sockets would leave talk calls waiting out their resume window in a process that is going away.
      await talk.endAll('node-shutdown');
      await Promise.all([listener.close({ drainMs: 1000 }), audioSocket?.close(1000), sip?.close()]);
      await nodeRegistry.deregister(nodeId).catch(() => undefined);
      grpcServer.forceShutdown();
    },
  };
}

export type MediaServer = Awaited<ReturnType<typeof startMediaServer>>;

/** A percent-encoded path segment, or undefined when it does not decode. */
function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
