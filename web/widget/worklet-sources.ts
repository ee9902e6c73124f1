/**
 * The two worklet processors as JavaScript source, so the widget stays one file: scripts/build-widget.mjs
 * bundles capture-worklet.ts and playback-worklet.ts first and defines these constants as their code.
 * Loaded through Blob URLs (`audioWorklet.addModule` needs a URL); a page whose Content-Security-Policy
 * forbids `blob:` scripts cannot run the widget.
 */
declare const __VOICE_WIDGET_CAPTURE_WORKLET__: string;
declare const __VOICE_WIDGET_PLAYBACK_WORKLET__: string;

export const captureWorkletSource: string = __VOICE_WIDGET_CAPTURE_WORKLET__;
export const playbackWorkletSource: string = __VOICE_WIDGET_PLAYBACK_WORKLET__;
