export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

export interface ToolCall {
  readonly id: string;
  readonly name: string;
  /** JSON text exactly as the model produced it. */
  readonly arguments: string;
}

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
  /** Assistant message cut short by the caller; `content` holds only what was heard. */
  readonly interrupted?: boolean;
  readonly toolCalls?: readonly ToolCall[];
  readonly toolCallId?: string;
}

export interface ToolDefinition {
  readonly name: string;
  readonly description: string;
  /** JSON Schema of the arguments object. */
  readonly parameters: Readonly<Record<string, unknown>>;
}

export type LlmDelta =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'toolCall'; readonly call: ToolCall }
  | {
      readonly type: 'usage';
      /** All prompt tokens, cached ones included. */
      readonly inputTokens: number;
      readonly outputTokens: number;
      /** Prompt tokens served from the vendor's prompt cache (a part of `inputTokens`), where reported. */
      readonly cachedInputTokens?: number;
    }
  | { readonly type: 'done'; readonly reason: 'stop' | 'length' | 'tool_calls' | 'other' };

export interface LlmRequest {
  readonly messages: readonly ChatMessage[];
  readonly tools: readonly ToolDefinition[];
  readonly model?: string;
  readonly temperature?: number;
  readonly maxTokens?: number;
  readonly endpoint?: string;
  readonly apiKey?: string;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface LlmCapabilities {
  readonly tools: boolean;
  readonly edgeCapable: boolean;
}

export interface LanguageModel {
  readonly id: string;
  readonly capabilities: LlmCapabilities;
  /** Streams deltas; throws a ProviderError on failure; stops promptly when `signal` aborts. */
  stream(request: LlmRequest, signal: AbortSignal): AsyncIterable<LlmDelta>;
}

/** Runs the assistant's tools (HTTP calls, end-call, transfer, knowledge lookup). */
export interface ToolExecutor {
  readonly definitions: readonly ToolDefinition[];
  execute(call: ToolCall, signal: AbortSignal): Promise<string>;
}
