/**
 * LiteRT.js in the Web Worker: loads the runtime (WebAssembly from the installed @litertjs/core
 * package, served by the page's own server), checks and compiles a `.tflite` export, and runs one
 * [1, tile, tile, 3] float32 tile at a time.
 *
 * Runtime: the threaded XNNPACK build when the page is cross-origin isolated (COOP/COEP headers)
 * and the browser has threads and relaxed SIMD, else the single-threaded build. Accelerator:
 * 'webgpu' when asked for (or 'auto' and a WebGPU adapter exists), else 'wasm'; when WebGPU fails
 * to compile the model, 'auto' falls back to wasm and says so.
 */

const LITERT_URL = new URL('/vendor/litert/core.js', self.location.href).href;
const WASM_DIR = new URL('/vendor/litert/wasm/', self.location.href).href;

let litert = null;
let runtime = null;

/** Routes the Emscripten runtime's stderr: LiteRT logs INFO/WARNING lines there that are not errors. */
function logLine(text) {
  if (/^(INFO|VERBOSE|DEBUG)\b/.test(text) || /XNNPACK delegate/.test(text)) console.debug(text);
  else if (/^WARNING\b/.test(text)) console.debug(text);  // e.g. no NPU in a browser: expected
  else console.error(text);
}

/**
 * Loads LiteRT.js once. Returns {threaded, relaxedSimd, webgpu} (what the runtime can use).
 */
export async function loadRuntime() {
  if (runtime) return runtime;
  litert = await import(LITERT_URL);
  const relaxedSimd = await litert.supportsFeature('relaxedSimd');
  const threaded = Boolean(self.crossOriginIsolated) && relaxedSimd && await litert.supportsFeature('threads');
  // The Emscripten script is loaded with importScripts from this worker: tell it where its files are.
  self.Module = {
    locateFile: (file) => WASM_DIR + file,
    print: (text) => console.debug(text),
    printErr: logLine,
  };
  if (threaded) self.Module.mainScriptUrlOrBlob = `${WASM_DIR}litert_wasm_threaded_internal.js`;
  try {
    await litert.loadLiteRt(WASM_DIR, {threads: threaded});
  } catch (error) {
    throw new Error(`LiteRT.js: cannot load its WebAssembly runtime from ${WASM_DIR} (${error.message}); ` +
      'run `npm ci` in web/ and serve the page with `python main.py --mode=web`');
  }
  let webgpu = false;
  try {
    webgpu = litert.isWebGPUSupported() && Boolean(litert.getWebGpuDevice());
  } catch (error) {
    webgpu = false;
  }
  runtime = {threaded, relaxedSimd, webgpu};
  return runtime;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkTensor(details, kind, tile, fileName) {
  const expected = [1, tile, tile, 3];
  const shapes = details.map((d) => Array.from(d.shape));
  if (details.length !== 1 || details[0].dtype !== 'float32' || shapes[0].join(',') !== expected.join(',')) {
    throw new Error(`${fileName}: expected one float32 ${kind} of shape [${expected}] (the tile size in its JSON), ` +
      `got ${JSON.stringify(details.map((d, i) => [shapes[i], d.dtype]))}`);
  }
}

/**
 * Fetches, checks (size and sha256 from the JSON) and compiles a model.
 *
 * @param {string} url the `.tflite` URL.
 * @param {object} description its JSON (model_file.py): tile, sha256, bytes, model_file.
 * @param {string} accelerator 'auto', 'webgpu' or 'wasm'.
 * @returns {Promise<object>} {runTile(Float32Array) -> Promise<Float32Array>, info: {accelerator,
 *   threads, threaded, fellBack}, close()}.
 */
export async function compileModel(url, description, accelerator) {
  const state = await loadRuntime();
  const fileName = description.model_file || url;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${fileName}: cannot download the model (HTTP ${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (description.bytes !== undefined && bytes.length !== description.bytes) {
    throw new Error(`${fileName}: ${bytes.length} bytes, but its JSON says ${description.bytes}; re-export the model`);
  }
  if (await sha256Hex(bytes) !== description.sha256) {
    throw new Error(`${fileName}: its sha256 differs from the one in its JSON; keep the .tflite and .json of one export together`);
  }
  const wanted = accelerator === 'auto' ? (state.webgpu ? 'webgpu' : 'wasm') : accelerator;
  if (wanted === 'webgpu' && !state.webgpu) {
    throw new Error('WebGPU is not available in this browser (no adapter); choose wasm');
  }
  let model;
  let fellBack = null;
  try {
    model = await litert.loadAndCompile(bytes, {accelerator: wanted});
  } catch (error) {
    if (wanted !== 'webgpu' || accelerator !== 'auto') {
      throw new Error(`${fileName}: LiteRT.js cannot compile it for ${wanted} (${error.message})`);
    }
    fellBack = `WebGPU failed (${error.message}); running on wasm`;
    model = await litert.loadAndCompile(bytes, {accelerator: 'wasm'});
  }
  const tile = description.tile;
  try {
    checkTensor(model.getInputDetails(), 'input', tile, fileName);
    checkTensor(model.getOutputDetails(), 'output', tile, fileName);
  } catch (error) {
    model.delete();
    throw error;
  }
  const shape = [1, tile, tile, 3];
  const runTile = async (data) => {
    const input = new litert.Tensor(data, shape);
    let outputs;
    try {
      outputs = await model.run(input);
    } finally {
      input.delete();
    }
    try {
      return new Float32Array(await outputs[0].data());  // a copy: the tensor's memory is freed below
    } finally {
      for (const output of outputs) output.delete();
    }
  };
  const options = model.options;
  const info = {
    accelerator: options.accelerator,
    threads: options.accelerator === 'wasm' ? options.cpuOptions.numThreads : null,
    threaded: state.threaded,
    fullyAccelerated: model.isFullyAccelerated,
    fellBack,
  };
  return {runTile, info, close: () => model.delete()};
}
