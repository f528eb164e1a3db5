/**
 * The page: settings, the photo (drag-and-drop or file picker), progress and cancel, the result.
 *
 * Local mode hands the photo to the Web Worker (worker.js), which runs LiteRT.js; server mode
 * sends it to TF Serving through the page server's /proxy route (server_mode.js). The page's
 * state is in #message[data-state]: loading, ready, running, done, error or cancelled, and
 * #message[data-job] counts the photos started; #result-info[data-stats] has the last local run's timings
 * (benchmarks/web_litert.py reads them).
 */

import {checkPixelLimit, megapixels, readImageHeader} from './image_header.js';
import {deblurOnServer} from './server_mode.js';
import {CompareViewer} from './viewer.js';

const $ = (id) => document.getElementById(id);
const ui = {
  modeLocal: $('mode-local'), modeServer: $('mode-server'), serverName: $('server-name'),
  localSettings: $('local-settings'), modelSelect: $('model-select'), accelerator: $('accelerator-select'),
  runtimeInfo: $('runtime-info'), dropZone: $('drop-zone'), fileInput: $('file-input'), limitInfo: $('limit-info'),
  progressBox: $('progress-box'), progress: $('progress'), progressText: $('progress-text'),
  cancel: $('cancel-button'), message: $('message'), result: $('result'), download: $('download-link'),
  resultInfo: $('result-info'),
};
const viewer = new CompareViewer({
  viewer: $('viewer'), before: $('before-image'), after: $('after-image'), split: $('split'),
  viewMode: $('view-mode'), zoomLevel: $('zoom-level'),
});
$('zoom-fit').addEventListener('click', () => viewer.fit());
$('zoom-1').addEventListener('click', () => viewer.actualSize());
$('zoom-in').addEventListener('click', () => viewer.zoomBy(1.5));
$('zoom-out').addEventListener('click', () => viewer.zoomBy(1 / 1.5));

let config = null;
let worker = null;
let nextId = 1;
let job = null;  // {id, name, mode, started, abort?}
const waiting = new Map();  // worker message id -> {resolve, reject} for model loads
let runtime = null;  // the loaded model's info
let urls = [];

function say(text, state) {
  ui.message.textContent = text;
  ui.message.dataset.state = state;
}

function formatSeconds(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function describeRuntime(info) {
  const engine = info.accelerator === 'webgpu' ? 'WebGPU' :
    `WebAssembly (XNNPACK), ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  return `LiteRT.js on ${engine}` + (info.fellBack ? ` — ${info.fellBack}` : '');
}

function onWorkerMessage(event) {
  const message = event.data;
  const pending = waiting.get(message.id);
  if (pending) {
    waiting.delete(message.id);
    if (message.type === 'error') pending.reject(new Error(message.message));
    else pending.resolve(message);
    return;
  }
  if (!job || message.id !== job.id) return;  // a cancelled photo's late messages
  if (message.type === 'header') {
    const {width, height, format, bitDepth} = message.header;
    ui.progressText.textContent = `decoding ${width}x${height} ${format.toUpperCase()} (${bitDepth}-bit)`;
  } else if (message.type === 'progress') {
    ui.progress.max = message.total;
    ui.progress.value = message.done;
    const left = message.done ? (message.elapsed / message.done) * (message.total - message.done) : null;
    ui.progressText.textContent = `tile ${message.done} / ${message.total}` +
      (left !== null && message.done < message.total ? ` · about ${formatSeconds(left)} left` : '');
  } else if (message.type === 'result') {
    const blob = new Blob([message.png], {type: 'image/png'});
    const detail = `${message.width}x${message.height}, ${message.bitDepth}-bit, ${message.tiles} tile` +
      `${message.tiles === 1 ? '' : 's'} of ${message.tile} px (overlap ${message.overlap}) in ` +
      `${message.seconds.toFixed(1)} s with ${describeRuntime(message.info)}`;
    ui.resultInfo.dataset.stats = JSON.stringify({seconds: message.seconds, tileSeconds: message.tileSeconds,
      tiles: message.tiles, accelerator: message.info.accelerator, threads: message.info.threads});
    finish(blob, detail);
  } else if (message.type === 'cancelled') {
    endJob();
    say('Cancelled; choose another photo when ready.', 'cancelled');
  } else if (message.type === 'error') {
    endJob();
    say(message.message, 'error');
  }
}

function startWorker() {
  worker = new Worker('src/worker.js');
  worker.onmessage = onWorkerMessage;
  worker.onerror = (event) => {
    event.preventDefault();
    say(`The Web Worker failed: ${event.message}`, 'error');
  };
}

function callWorker(message) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, {resolve, reject});
    worker.postMessage({...message, id});
  });
}

async function loadModel() {
  const entry = config.models[Number(ui.modelSelect.value)];
  runtime = null;
  ui.runtimeInfo.textContent = `Loading ${entry.variant} model…`;
  say('Loading the model…', 'loading');
  try {
    const response = await fetch(entry.description_url);
    if (!response.ok) throw new Error(`${entry.description_url}: HTTP ${response.status}`);
    const description = await response.json();
    if (description.format !== 'ifan_tf.litert' || description.version !== 1) {
      throw new Error(`${entry.description_url}: not an ifan_tf.litert v1 model description`);
    }
    const loaded = await callWorker({type: 'load', url: entry.url, description, accelerator: ui.accelerator.value});
    runtime = {...loaded.info, description};
    ui.runtimeInfo.textContent = `${describeRuntime(loaded.info)}; model ${description.model_file} ` +
      `(${description.quantize}, tile ${description.tile}, overlap ${description.tile_overlap}), ` +
      `ready in ${loaded.seconds.toFixed(1)} s`;
    say('Ready: drop a photo or choose a file.', 'ready');
  } catch (error) {
    ui.runtimeInfo.textContent = 'No model loaded.';
    say(error.message, 'error');
  }
}

function endJob() {
  job = null;
  ui.progressBox.hidden = true;
}

function finish(blob, detail) {
  const name = job.name;
  const file = job.file;
  endJob();
  for (const url of urls) URL.revokeObjectURL(url);
  urls = [URL.createObjectURL(file), URL.createObjectURL(blob)];
  const probe = new Image();
  probe.src = urls[1];
  probe.decode().then(() => {
    ui.result.hidden = false;
    viewer.show(urls[0], urls[1], probe.naturalWidth, probe.naturalHeight);
    ui.download.href = urls[1];
    ui.download.download = `${name.replace(/\.[^.]*$/, '')}_deblurred.png`;
    ui.resultInfo.textContent = `${name}: ${detail}.`;
    say(`Done: ${name} deblurred (${detail}).`, 'done');
  }, (error) => say(`${name}: the result cannot be shown (${error.message})`, 'error'));
}

function cancelJob() {
  if (!job) return;
  if (job.mode === 'local') {
    worker.postMessage({type: 'cancel', id: job.id});
    ui.progressText.textContent = 'cancelling after the current tile…';
  } else {
    job.abort.abort();
  }
}

async function runOnServer(file, name, id) {
  const abort = new AbortController();
  job.abort = abort;
  const started = performance.now();
  const timer = setInterval(() => {
    ui.progressText.textContent = `${job && job.status || ''} · ${formatSeconds((performance.now() - started) / 1000)}`;
  }, 500);
  try {
    const header = await readImageHeader(file, name);
    checkPixelLimit(header, config.max_pixels, name);
    const blob = await deblurOnServer(file, name, {
      model: config.serving.model, maxRequestBytes: config.max_request_bytes, signal: abort.signal,
      onStatus: (status) => {
        if (job && job.id === id) job.status = status;
      },
    });
    if (!job || job.id !== id) return;
    finish(blob, `${header.width}x${header.height} on TF Serving (model ${config.serving.model}) in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    if (!job || job.id !== id) return;
    endJob();
    if (error.name === 'AbortError') say('Cancelled; choose another photo when ready.', 'cancelled');
    else say(error.message, 'error');
  } finally {
    clearInterval(timer);
  }
}

/** Starts deblurring `file` (cancelling a photo still running). */
function handleFile(file) {
  if (!file) return;
  if (job) cancelJob();
  const id = nextId++;
  const mode = ui.modeServer.checked ? 'server' : 'local';
  job = {id, name: file.name || 'photo', file, mode, status: ''};
  ui.message.dataset.job = String(Number(ui.message.dataset.job || 0) + 1);  // photos started, for tests
  ui.progressBox.hidden = false;
  ui.progress.removeAttribute('value');
  ui.progressText.textContent = 'reading the photo';
  say(`Working on ${job.name}…`, 'running');
  if (mode === 'server') {
    runOnServer(file, job.name, id);
  } else if (!runtime) {
    endJob();
    say('No model is loaded; choose a model first.', 'error');
  } else {
    worker.postMessage({type: 'deblur', id, file, name: job.name, maxPixels: config.max_pixels});
  }
}

function setMode() {
  const server = ui.modeServer.checked;
  ui.localSettings.disabled = server;
}

function bindInputs() {
  ui.fileInput.addEventListener('change', () => {
    handleFile(ui.fileInput.files[0]);
    ui.fileInput.value = '';  // the same file may be chosen again
  });
  for (const type of ['dragenter', 'dragover']) {
    document.addEventListener(type, (event) => {
      event.preventDefault();
      ui.dropZone.classList.add('dragging');
    });
  }
  document.addEventListener('dragleave', (event) => {
    if (!event.relatedTarget) ui.dropZone.classList.remove('dragging');
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    ui.dropZone.classList.remove('dragging');
    handleFile(event.dataTransfer.files[0]);
  });
  ui.cancel.addEventListener('click', cancelJob);
  ui.modeLocal.addEventListener('change', setMode);
  ui.modeServer.addEventListener('change', setMode);
  ui.modelSelect.addEventListener('change', loadModel);
  ui.accelerator.addEventListener('change', loadModel);
}

async function main() {
  bindInputs();
  try {
    const response = await fetch('config.json');
    if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    say(`The page's configuration cannot be loaded (${error.message}); serve it with python main.py --mode=web`, 'error');
    return;
  }
  config.models.forEach((entry, index) => ui.modelSelect.add(new Option(
    `${entry.variant} (${(entry.bytes / 1e6).toFixed(1)} MB)`, String(index))));
  ui.limitInfo.textContent = `Photos up to ${megapixels(config.max_pixels)} MP.`;
  if (config.serving) {
    ui.serverName.textContent = `(model ${config.serving.model})`;
  } else {
    ui.modeServer.disabled = true;
    ui.serverName.textContent = '(off: start the page with --serving_url)';
  }
  startWorker();
  await loadModel();
}

main();
