import { describe, expect, it } from 'vitest';
import { lastUserText } from '../fakes/llm';
import { startCall } from '../fakes/call';
import { splitWords, synthesizeWords } from '../fakes/tones';

const STORY = 'once upon a time there was a dragon and the dragon was warm and the dragon was sunny';
/** Length of the story's audio as the fake TTS makes it, in whole 20 ms frames (the last one padded). */
const storyMs = () => Math.ceil(synthesizeWords(splitWords(STORY), 16_000).pcm.length / 320) * 20;

/** A call where the caller asks for a story and the assistant is mid-answer after `speakMs`. */
async function callMidStory(extra: Parameters<typeof startCall>[0] = {}) {
  const call = await startCall({
    llm: { reply: (m) => (lastUserText(m).startsWith('tell me a story') ? STORY : 'okay sure'), firstTokenDelayMs: 100, tokenDelayMs: 20 },
    ...extra,
  });
  call.fake.say('tell me a story');
  await call.runUntil(() => call.fake.played.length > 0);
  return call;
}

describe('barge-in', () => {
  it('pauses at once on caller speech, then confirms on real words: cancels LLM and TTS and cuts history to what was heard', async () => {
    const call = await callMidStory();
    await call.run(1500); // ~1.5 s of the story plays
    const playedBefore = call.fake.playedMs();
    // A backchannel first (pauses, does not confirm), then a real word (confirms).
    call.fake.say('okay stop');
    const pausedAt = await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'paused'), 2000);
    expect(pausedAt).toBe(true);
    const pause = call.of('interruption').find((e) => e.phase === 'paused')!;
    expect(call.fake.stats.clears).toBeGreaterThan(0);

    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'confirmed'), 3000);
    expect(call.of('interruption').map((e) => e.phase)).toEqual(['paused', 'confirmed']);
    const confirm = call.of('interruption').find((e) => e.phase === 'confirmed')!;
    // Step 1 silenced the caller's line at once: nothing played between the pause and the confirmation.
    expect(confirm.atMs - pause.atMs).toBeGreaterThan(100);
    expect(call.fake.played.filter((p) => p.atMs > pause.atMs && p.atMs <= confirm.atMs)).toHaveLength(0);
    // Step 2: generation cancelled.
    expect(call.tts.stats.cancelled).toBeGreaterThan(0);

    // History holds exactly the words the caller heard, flagged interrupted.
    const heard = call.fake.heardWords(0, pause.atMs + 1);
    const cut = call.comm.history.find((m) => m.role === 'assistant')!;
    expect(cut.interrupted).toBe(true);
    expect(cut.content.split(' ')).toEqual(heard);
    expect(heard.length).toBeGreaterThan(2);
    expect(heard.length).toBeLessThan(STORY.split(' ').length);
    expect(playedBefore).toBeGreaterThan(0);

    // The caller's words become the next turn.
    await call.runUntil(() => call.comm.history.some((m) => m.role === 'user' && m.content === 'okay stop'));
    await call.runUntil(() => call.of('assistantMessage').length === 2);
    expect(call.comm.history.at(-1)).toMatchObject({ role: 'assistant', content: 'okay sure' });
    await call.end();
  });

  it('a backchannel pauses but does not interrupt: playback resumes from the playout position and no word is lost', async () => {
    const call = await callMidStory();
    await call.run(1200);
    call.fake.say('uh-huh');
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'resumed'), 4000);
    expect(call.of('interruption').map((e) => e.phase)).toEqual(['paused', 'resumed']);
    const [paused, resumed] = call.of('interruption');
    // Silence while paused...
    expect(call.fake.played.filter((p) => p.atMs > paused!.atMs && p.atMs < resumed!.atMs)).toHaveLength(0);
    await call.runUntil(() => call.of('assistantMessage').length === 1, 20_000);
    // ...then every word of the story reached the caller exactly once, in order, and no audio was lost or
    // repeated around the pause (to within one 20 ms frame of the far end's clock phase).
    expect(call.fake.heardWords()).toEqual(STORY.split(' '));
    expect(Math.abs(call.fake.playedMs() - storyMs())).toBeLessThanOrEqual(20);
    const story = call.comm.history.find((m) => m.role === 'assistant')!;
    expect(story).toMatchObject({ content: STORY });
    expect(story.interrupted).toBeUndefined();
    expect(call.tts.stats.cancelled).toBe(0);
    // The backchannel did not become a user turn.
    expect(call.comm.history.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['tell me a story']);
    await call.end();
  });

  it('noise without words is a false interruption: resumes after falseInterruptionMs', async () => {
    const call = await callMidStory();
    await call.run(1000);
    call.fake.noise(300);
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'paused'), 2000);
    const paused = call.of('interruption').find((e) => e.phase === 'paused')!;
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'resumed'), 4000);
    const resumed = call.of('interruption').find((e) => e.phase === 'resumed')!;
    expect(resumed.atMs - paused.atMs).toBeGreaterThanOrEqual(1500);
    expect(resumed.atMs - paused.atMs).toBeLessThan(1700);
    await call.runUntil(() => call.of('assistantMessage').length === 1, 20_000);
    expect(call.fake.heardWords()).toEqual(STORY.split(' '));
    expect(Math.abs(call.fake.playedMs() - storyMs())).toBeLessThanOrEqual(20);
    await call.end();
  });

  it('a short click (with the VAD hangover, still under minSpeechMs) does not pause at all', async () => {
    const call = await callMidStory();
    await call.run(1000);
    call.fake.noise(40);
    await call.run(2000);
    expect(call.of('interruption')).toEqual([]);
    await call.end();
  });

  it('vad-only mode confirms on speech duration alone (STT without interim results)', async () => {
    const call = await callMidStory({
      config: { interruption: { mode: 'vad-only', vadOnlyConfirmMs: 600 } },
      stt: { interim: false },
    });
    await call.run(1000);
    call.fake.noise(800);
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'confirmed'), 3000);
    const phases = call.of('interruption');
    expect(phases.map((e) => e.phase)).toEqual(['paused', 'confirmed']);
    expect(phases[1]!.atMs - phases[0]!.atMs).toBeGreaterThanOrEqual(380);
    expect(call.comm.history.find((m) => m.role === 'assistant')?.interrupted).toBe(true);
    await call.end();
  });

  it('in vad-only mode a short burst still only pauses and resumes', async () => {
    const call = await callMidStory({ config: { interruption: { mode: 'vad-only', vadOnlyConfirmMs: 600 } }, stt: { interim: false } });
    await call.run(1000);
    call.fake.noise(300);
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'resumed'), 4000);
    expect(call.of('interruption').map((e) => e.phase)).toEqual(['paused', 'resumed']);
    await call.end();
  });

  it('echo guard: the assistant hearing its own words through the caller microphone is not an interruption', async () => {
    const call = await callMidStory({ channel: { echoGain: 0.5 } });
    await call.runUntil(() => call.of('assistantMessage').length === 1, 60_000);
    const phases = call.of('interruption').map((e) => e.phase);
    // Without acoustic echo cancellation the VAD hears the echo; the transcript shows it is the assistant's
    // own words, so output is never cancelled and any pause it caused ends early.
    expect(phases).not.toContain('confirmed');
    expect(call.stt.stats.words).toContain('dragon'); // the echo really reached the STT
    const pauses = call.of('interruption');
    for (let i = 0; i + 1 < pauses.length; i += 2) expect(pauses[i + 1]!.atMs - pauses[i]!.atMs).toBeLessThan(1500);
    expect(call.comm.history.find((m) => m.role === 'assistant')).toMatchObject({ content: STORY });
    expect(call.fake.heardWords()).toEqual(STORY.split(' '));
    await call.end();
  });

  it('without the echo guard the same echo does interrupt (control)', async () => {
    const call = await callMidStory({ channel: { echoGain: 0.5 }, config: { interruption: { echoGuard: false } } });
    await call.runUntil(() => call.of('interruption').some((e) => e.phase === 'confirmed'), 20_000);
    expect(call.of('interruption').some((e) => e.phase === 'confirmed')).toBe(true);
    await call.end();
  });

  it('with interruptions disabled the assistant talks on and the caller\'s words wait for the next turn', async () => {
    const call = await callMidStory({ config: { interruption: { enabled: false } } });
    await call.run(1000);
    call.fake.say('wait');
    await call.runUntil(() => call.of('assistantMessage').length === 2, 30_000);
    expect(call.of('interruption')).toEqual([]);
    expect(call.comm.history.filter((m) => m.role === 'assistant')[0]!.content).toBe(STORY);
    expect(call.comm.history.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['tell me a story', 'wait']);
    await call.end();
  });
});
