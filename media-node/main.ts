/**
 * Media node entry point. Until the media node serves real calls (HTTP/WebSocket/gRPC on :9007,
 * AudioSocket on :4573, SIP on :5090), `npm start` runs one scripted demo call through the engine.
 */
import { runDemoCall } from './demo-call';

runDemoCall().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
