// Wrangler's CompiledWasm rule turns a `.wasm` import into a compiled module (workerd cannot compile from bytes).
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
