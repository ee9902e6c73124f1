/**
 * Media node entry point (`npm start`): see run.ts. The speech providers (cloud adapters and the offline
 * `local` engines) and the LLM adapters register here. An assistant naming a provider the node lacks is
 * refused at the webhook with the reason spoken to the caller.
 */
import { registerSpeechProviders } from './providers/register';
import { registerLlmProviders } from './providers/register-llm';
import { runMediaNode } from './run';

runMediaNode({
  env: process.env,
  registerProviders: (registry, { metrics, logger }) => {
    registerLlmProviders(registry, { metrics });
    return registerSpeechProviders(registry, { metrics, warn: (message) => logger.warn(message), azureRegion: process.env.AZURE_SPEECH_SERVICE_REGION });
  },
}).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
