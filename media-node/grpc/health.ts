import * as grpc from '@grpc/grpc-js';

/**
 * The standard gRPC health service (`grpc.health.v1.Health`, https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
 * without codegen: its two messages have one field each, so a hand-written protobuf codec for exactly those
 * fields is smaller than any generated one and needs no .proto at run time.
 *
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }   // UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
 *
 * `''` names the whole server. `markDraining()` (on SIGTERM) turns every service NOT_SERVING for good, so load
 * balancers and Kubernetes gRPC probes stop sending new calls while running ones finish.
 */

export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

export const SERVING_STATUS_CODES = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = keyof typeof SERVING_STATUS_CODES;

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

// ---------------------------------------------------------------------------------------------------------------
// Protobuf wire format, just enough for the two messages (https://protobuf.dev/programming-guides/encoding/).

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** Bytes that are not a valid encoding of the expected message; `offset` is where decoding stopped. */
export class ProtobufDecodeError extends Error {
  override readonly name = 'ProtobufDecodeError';
  readonly code = 'PROTOBUF_DECODE';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`PROTOBUF_DECODE: ${message} (at byte ${offset})`);
  }
}

function pushVarint(out: number[], value: number): void {
  let v = value;
  while (v > 0x7f) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** A cursor over the input; every read checks bounds and returns a ProtobufDecodeError instead of throwing. */
class WireReader {
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  /** Varints up to 2^53 are exact; longer ones (negative int32 enums use 10 bytes) come back as large numbers. */
  varint(): number | ProtobufDecodeError {
    const start = this.offset;
    let value = 0;
    for (let i = 0; i < 10; i++) {
      const byte = this.bytes[this.offset];
      if (byte === undefined) return new ProtobufDecodeError('truncated varint', start);
      this.offset++;
      value += (byte & 0x7f) * 2 ** (7 * i);
      if (byte < 0x80) return value;
    }
    return new ProtobufDecodeError('varint longer than 10 bytes', start);
  }

  take(length: number): Uint8Array | ProtobufDecodeError {
    if (length > this.bytes.length - this.offset) return new ProtobufDecodeError(`length ${length} runs past the end`, this.offset);
    const view = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  /** Skips a field of a number this decoder does not know (protobuf requires unknown fields to be ignored). */
  skip(wireType: number): ProtobufDecodeError | undefined {
    switch (wireType) {
      case WIRE_VARINT: {
        const v = this.varint();
        return v instanceof ProtobufDecodeError ? v : undefined;
      }
      case WIRE_FIXED64:
      case WIRE_FIXED32: {
        const v = this.take(wireType === WIRE_FIXED64 ? 8 : 4);
        return v instanceof ProtobufDecodeError ? v : undefined;
      }
      case WIRE_LENGTH_DELIMITED: {
        const length = this.varint();
        if (length instanceof ProtobufDecodeError) return length;
        const v = this.take(length);
        return v instanceof ProtobufDecodeError ? v : undefined;
      }
      default:
        return new ProtobufDecodeError(`unsupported wire type ${wireType}`, this.offset);
    }
  }

  /** Reads a field key; returns [fieldNumber, wireType]. */
  key(): [number, number] | ProtobufDecodeError {
    const start = this.offset;
    const key = this.varint();
    if (key instanceof ProtobufDecodeError) return key;
    const field = Math.floor(key / 8);
    if (field === 0) return new ProtobufDecodeError('field number 0', start);
    return [field, key % 8];
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

export function encodeHealthCheckRequest(request: HealthCheckRequest): Buffer {
  if (request.service === '') return Buffer.alloc(0); // proto3 leaves default values out
  const text = utf8Encoder.encode(request.service);
  const head: number[] = [(1 << 3) | WIRE_LENGTH_DELIMITED];
  pushVarint(head, text.length);
  return Buffer.concat([Buffer.from(head), text]);
}

export function decodeHealthCheckRequest(bytes: Uint8Array): HealthCheckRequest | ProtobufDecodeError {
  const reader = new WireReader(bytes);
  let service = '';
  while (!reader.done) {
    const key = reader.key();
    if (key instanceof ProtobufDecodeError) return key;
    const [field, wireType] = key;
    if (field !== 1) {
      const skipped = reader.skip(wireType);
      if (skipped) return skipped;
      continue;
    }
    if (wireType !== WIRE_LENGTH_DELIMITED) return new ProtobufDecodeError(`field 1 (service) has wire type ${wireType}, expected 2`, reader.offset);
    const length = reader.varint();
    if (length instanceof ProtobufDecodeError) return length;
    const start = reader.offset;
    const text = reader.take(length);
    if (text instanceof ProtobufDecodeError) return text;
    try {
      service = utf8.decode(text); // the last occurrence wins, as for every proto3 scalar
    } catch {
      return new ProtobufDecodeError('field 1 (service) is not valid UTF-8', start);
    }
  }
  return { service };
}

export function encodeHealthCheckResponse(response: HealthCheckResponse): Buffer {
  const code = SERVING_STATUS_CODES[response.status];
  if (code === 0) return Buffer.alloc(0);
  const out: number[] = [(1 << 3) | WIRE_VARINT];
  pushVarint(out, code);
  return Buffer.from(out);
}

const STATUS_BY_CODE = new Map<number, ServingStatus>(Object.entries(SERVING_STATUS_CODES).map(([name, code]) => [code, name as ServingStatus]));

/** An enum value this version does not know (a newer server) reads as UNKNOWN. */
export function decodeHealthCheckResponse(bytes: Uint8Array): HealthCheckResponse | ProtobufDecodeError {
  const reader = new WireReader(bytes);
  let status: ServingStatus = 'UNKNOWN';
  while (!reader.done) {
    const key = reader.key();
    if (key instanceof ProtobufDecodeError) return key;
    const [field, wireType] = key;
    if (field !== 1) {
      const skipped = reader.skip(wireType);
      if (skipped) return skipped;
      continue;
    }
    if (wireType !== WIRE_VARINT) return new ProtobufDecodeError(`field 1 (status) has wire type ${wireType}, expected 0`, reader.offset);
    const code = reader.varint();
    if (code instanceof ProtobufDecodeError) return code;
    status = STATUS_BY_CODE.get(code) ?? 'UNKNOWN';
  }
  return { status };
}

/** grpc-js turns a throwing deserializer into status INTERNAL for that call; the process is unaffected. */
function orThrow<T>(decoded: T | ProtobufDecodeError): T {
  if (decoded instanceof ProtobufDecodeError) throw decoded;
  return decoded;
}

// ---------------------------------------------------------------------------------------------------------------
// grpc-js service definition (server and generic client share it).

export const healthServiceDefinition = {
  Check: {
    path: `/${HEALTH_SERVICE_NAME}/Check`,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeHealthCheckRequest,
    requestDeserialize: (bytes: Buffer) => orThrow(decodeHealthCheckRequest(bytes)),
    responseSerialize: encodeHealthCheckResponse,
    responseDeserialize: (bytes: Buffer) => orThrow(decodeHealthCheckResponse(bytes)),
    originalName: 'check',
  },
  Watch: {
    path: `/${HEALTH_SERVICE_NAME}/Watch`,
    requestStream: false,
    responseStream: true,
    requestSerialize: encodeHealthCheckRequest,
    requestDeserialize: (bytes: Buffer) => orThrow(decodeHealthCheckRequest(bytes)),
    responseSerialize: encodeHealthCheckResponse,
    responseDeserialize: (bytes: Buffer) => orThrow(decodeHealthCheckResponse(bytes)),
    originalName: 'watch',
  },
} satisfies grpc.ServiceDefinition;

/** A typed client for the service (probes, tests): a grpc-js generic client over the same definition. */
export interface HealthClient extends grpc.Client {
  Check(request: HealthCheckRequest, options: grpc.CallOptions, callback: grpc.requestCallback<HealthCheckResponse>): grpc.ClientUnaryCall;
  Watch(request: HealthCheckRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<HealthCheckResponse>;
}

const HealthClientConstructor = grpc.makeGenericClientConstructor(healthServiceDefinition, 'Health');

export function createHealthClient(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()): HealthClient {
  return new HealthClientConstructor(address, credentials) as unknown as HealthClient;
}

export interface HealthService {
  /** Sets the status of one service (`''` = the whole server). Ignored after `markDraining()`. */
  setStatus(service: string, status: ServingStatus): void;
  /** undefined: the service was never registered (Check answers NOT_FOUND, Watch SERVICE_UNKNOWN). */
  getStatus(service: string): ServingStatus | undefined;
  /**
   * Every service reports NOT_SERVING from now on (later `setStatus` calls are ignored: a draining node does
   * not come back). Open Watch streams receive NOT_SERVING and are then ended with OK, so they do not hold
   * the HTTP/2 connection open through the drain; the watcher re-watches elsewhere.
   */
  markDraining(): void;
  readonly draining: boolean;
  /** Registers `grpc.health.v1.Health` (Check and Watch) on the server. */
  addToServer(server: grpc.Server): void;
}

export function createHealthService(initial: Readonly<Record<string, ServingStatus>> = { '': 'SERVING' }): HealthService {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial));
  const watchers = new Set<{ notify(): void; end(): void }>();
  let draining = false;

  const check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
    const status = statuses.get(call.request.service);
    if (status === undefined) {
      callback({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      return;
    }
    callback(null, { status });
  };

  const watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
    const service = call.request.service;
    let last: ServingStatus | undefined;
    const watcher = {
      notify() {
        const status = statuses.get(service) ?? 'SERVICE_UNKNOWN';
        if (status === last) return;
        last = status;
        call.write({ status });
      },
      end() {
        watchers.delete(watcher);
        call.end();
      },
    };
    const forget = () => watchers.delete(watcher);
    call.on('cancelled', forget);
    call.on('error', forget);
    call.on('close', forget);
    watcher.notify();
    if (draining) watcher.end();
    else watchers.add(watcher);
  };

  function notifyAll(): void {
    for (const w of [...watchers]) w.notify();
  }

  return {
    setStatus(service, status) {
      if (draining) return;
      statuses.set(service, status);
      notifyAll();
    },
    getStatus: (service) => statuses.get(service),
    markDraining() {
      if (draining) return;
      for (const service of statuses.keys()) statuses.set(service, 'NOT_SERVING');
      draining = true;
      for (const w of [...watchers]) {
        w.notify();
        w.end();
      }
    },
    get draining() {
      return draining;
    },
    addToServer(server) {
      server.addService(healthServiceDefinition, { Check: check, Watch: watch });
    },
  };
}
