/**
 * Media node entry point (`npm start`): see run.ts. Providers register here as their adapters land (speech
 * and LLM issues); an assistant naming one that is missing is refused at the webhook with the reason spoken
 * to the caller.
 */
import { runMediaNode } from './run';

runMediaNode({ env: process.env }).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
