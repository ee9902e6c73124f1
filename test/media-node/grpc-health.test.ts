import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ProtobufDecodeError,
  createHealthClient,
  createHealthService,
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  type HealthCheckResponse,
  type HealthClient,
  type HealthService,
} from '../../media-node/grpc/health';
import { startListener, type Listener } from '../../media-node/listener';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

describe('health messages on the protobuf wire', () => {
  it('encodes the two messages as protoc does (defaults left out)', () => {
    expect(hex(encodeHealthCheckRequest({ service: '' }))).toBe('');
    expect(hex(encodeHealthCheckRequest({ service: 'talk_api.TalkService' }))).toBe('0a14' + Buffer.from('talk_api.TalkService').toString('hex'));
    expect(hex(encodeHealthCheckRequest({ service: 'x'.repeat(200) }))).toMatch(/^0ac801/); // two-byte length varint
    expect(hex(encodeHealthCheckRequest({ service: 'é' }))).toBe('0a02c3a9');
    expect(hex(encodeHealthCheckResponse({ status: 'UNKNOWN' }))).toBe('');
    expect(hex(encodeHealthCheckResponse({ status: 'SERVING' }))).toBe('0801');
    expect(hex(encodeHealthCheckResponse({ status: 'NOT_SERVING' }))).toBe('0802');
    expect(hex(encodeHealthCheckResponse({ status: 'SERVICE_UNKNOWN' }))).toBe('0803');
  });

  it('decodes what it encodes, and empty input as the defaults', () => {
    for (const service of ['', 'a', 'grpc.health.v1.Health', 'x'.repeat(300), 'ünï']) {
      expect(decodeHealthCheckRequest(encodeHealthCheckRequest({ service }))).toEqual({ service });
    }
    for (const status of ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const) {
      expect(decodeHealthCheckResponse(encodeHealthCheckResponse({ status }))).toEqual({ status });
    }
    expect(decodeHealthCheckRequest(new Uint8Array())).toEqual({ service: '' });
  });

  it('skips unknown fields of every wire type, and the last occurrence of a field wins', () => {
    // field 2 varint 300, field 3 fixed64, field 4 bytes "zz", field 5 fixed32, then service "ok", then service "b"
    const request = bytes('10 ac02  19 0102030405060708  22 02 7a7a  2d 01020304  0a 02 6f6b  0a 01 62');
    expect(decodeHealthCheckRequest(request)).toEqual({ service: 'b' });
    expect(decodeHealthCheckResponse(bytes('10 05  0801  0802'))).toEqual({ status: 'NOT_SERVING' });
    expect(decodeHealthCheckResponse(bytes('08 07'))).toEqual({ status: 'UNKNOWN' }); // a status from a newer server
  });

  it('returns a typed error for malformed bytes instead of throwing', () => {
    const cases: [string, RegExp][] = [
      ['0a', /truncated varint/], // key, no length
      ['0a 05 6162', /length 5 runs past the end/],
      ['0a 02 c328', /not valid UTF-8/],
      ['08 01', /wire type 0, expected 2/],
      ['00', /field number 0/],
      ['13', /unsupported wire type 3/], // a group (field 2): deprecated, not skippable here
      ['10 ffffffffffffffffffff01', /varint longer than 10 bytes/],
    ];
    for (const [input, message] of cases) {
      const decoded = decodeHealthCheckRequest(bytes(input));
      expect(decoded).toBeInstanceOf(ProtobufDecodeError);
      expect((decoded as ProtobufDecodeError).message).toMatch(message);
    }
    expect(decodeHealthCheckResponse(bytes('0a 00'))).toBeInstanceOf(ProtobufDecodeError);
  });
});

describe('grpc.health.v1.Health through the one-port listener', () => {
  let grpcServer: grpc.Server;
  let health: HealthService;
  let listener: Listener;
  let client: HealthClient;

  beforeAll(async () => {
    grpcServer = new grpc.Server();
    health = createHealthService({ '': 'SERVING', 'talk_api.TalkService': 'SERVING' });
    health.addToServer(grpcServer);
    listener = await startListener({ port: 0, host: '127.0.0.1', fetch: () => new Response('http ok'), grpcServer });
    client = createHealthClient(`127.0.0.1:${listener.port}`);
  });
  afterAll(async () => {
    client.close();
    await listener.close();
    grpcServer.forceShutdown();
  });

  function check(service: string): Promise<HealthCheckResponse> {
    return new Promise((resolve, reject) =>
      client.Check({ service }, { deadline: Date.now() + 3_000 }, (error, response) => (error ? reject(error) : resolve(response!))),
    );
  }

  it('answers Check with SERVING, then NOT_SERVING once set; HTTP/1.1 on the same port meanwhile', async () => {
    expect(await check('')).toEqual({ status: 'SERVING' });
    expect(await (await fetch(`${listener.url}/`)).text()).toBe('http ok');
    health.setStatus('', 'NOT_SERVING');
    expect(await check('')).toEqual({ status: 'NOT_SERVING' });
    expect(await check('talk_api.TalkService')).toEqual({ status: 'SERVING' });
    health.setStatus('', 'SERVING');
    expect(await check('')).toEqual({ status: 'SERVING' });
  });

  it('answers NOT_FOUND for a service it does not know', async () => {
    await expect(check('no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('answers INTERNAL for a request that is not a HealthCheckRequest, and keeps serving', async () => {
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (raw: Buffer) => raw,
        (raw: Buffer) => raw,
        bytes('0a 05 61'), // length 5, one byte of content
        (e) => resolve(e),
      ),
    );
    expect(error?.code).toBe(grpc.status.INTERNAL);
    expect(await check('')).toEqual({ status: 'SERVING' });
  });

  it('streams status changes on Watch; draining sends NOT_SERVING and ends the stream', async () => {
    const received: string[] = [];
    const stream = client.Watch({ service: 'talk_api.TalkService' });
    const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    const next = () => new Promise<void>((r) => stream.once('data', (m: HealthCheckResponse) => (received.push(m.status), r())));
    await next();
    health.setStatus('talk_api.TalkService', 'SERVING'); // unchanged: nothing is sent
    health.setStatus('talk_api.TalkService', 'NOT_SERVING');
    await next();
    health.setStatus('talk_api.TalkService', 'SERVING');
    await next();
    health.markDraining();
    await next();
    expect(received).toEqual(['SERVING', 'NOT_SERVING', 'SERVING', 'NOT_SERVING']);
    expect((await ended).code).toBe(grpc.status.OK);
    // Draining is final: Check says NOT_SERVING for every service, later setStatus calls are ignored.
    health.setStatus('', 'SERVING');
    expect(await check('')).toEqual({ status: 'NOT_SERVING' });
    expect(await check('talk_api.TalkService')).toEqual({ status: 'NOT_SERVING' });
  });

  it('Watch of an unknown service reports SERVICE_UNKNOWN and keeps watching', async () => {
    const other = createHealthService();
    const server = new grpc.Server();
    other.addToServer(server);
    const own = await startListener({ port: 0, host: '127.0.0.1', fetch: () => new Response(''), grpcServer: server });
    const ownClient = createHealthClient(`127.0.0.1:${own.port}`);
    try {
      const stream = ownClient.Watch({ service: 'later.Service' });
      stream.on('error', () => undefined); // the cancel below ends it with CANCELLED
      const statuses: string[] = [];
      await new Promise<void>((resolve) =>
        stream.on('data', (m: HealthCheckResponse) => {
          statuses.push(m.status);
          if (statuses.length === 1) other.setStatus('later.Service', 'SERVING');
          if (statuses.length === 2) resolve();
        }),
      );
      expect(statuses).toEqual(['SERVICE_UNKNOWN', 'SERVING']);
      stream.cancel();
    } finally {
      ownClient.close();
      await own.close();
      server.forceShutdown();
    }
  });

  it('a drain does not wait on an idle gRPC connection (GOAWAY closes it)', async () => {
    const server = new grpc.Server();
    createHealthService().addToServer(server);
    const own = await startListener({ port: 0, host: '127.0.0.1', fetch: () => new Response(''), grpcServer: server });
    const ownClient = createHealthClient(`127.0.0.1:${own.port}`);
    await new Promise((resolve, reject) => ownClient.Check({ service: '' }, {}, (e, r) => (e ? reject(e) : resolve(r))));
    expect(own.connections().grpc).toBe(1);
    const started = Date.now();
    await own.close({ drainMs: 5_000 });
    expect(Date.now() - started).toBeLessThan(1_000);
    ownClient.close();
    server.forceShutdown();
  });
});
