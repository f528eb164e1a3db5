/**
 * The Web Worker's work, so the page stays responsive: load and compile a model, then per photo
 * read its header (size limit), decode it, run the tile plan through LiteRT.js with progress, and
 * encode the PNG. The page sends {type: 'load' | 'deblur' | 'cancel', ...}; the worker answers
 * with {type: 'loaded' | 'header' | 'progress' | 'result' | 'cancelled' | 'error', id, ...}.
 */

import {decodePicture} from './decode.js';
import {deblurPicture} from './deblur.js';
import {compileModel} from './litert_runner.js';
import {encodePng} from './png_encode.js';
import {imagePlan} from './tile_plan.js';

let model = null;  // {runTile, info, close, description}
let queue = Promise.resolve();  // loads and photos run one after the other, in the order sent
const cancelled = new Set();

async function load(message) {
  if (model) {
    model.close();
    model = null;
  }
  const started = performance.now();
  const compiled = await compileModel(message.url, message.description, message.accelerator);
  model = {...compiled, description: message.description};
  self.postMessage({type: 'loaded', id: message.id, info: compiled.info, seconds: (performance.now() - started) / 1000});
}

async function deblur(message) {
  const {id, file, name, maxPixels} = message;
  if (cancelled.has(id)) {
    self.postMessage({type: 'cancelled', id});
    return;
  }
  if (!model) throw new Error('no model is loaded (choose a model first)');
  const started = performance.now();
  const picture = await decodePicture(file, name, maxPixels, (header) => {
    self.postMessage({type: 'header', id, header: {format: header.format, width: header.width, height: header.height,
      bitDepth: header.bitDepth}});
  });
  const {tile, tile_overlap: overlap} = model.description;
  const plan = imagePlan(picture.height, picture.width, tile, overlap);
  const tilesStarted = performance.now();
  self.postMessage({type: 'progress', id, done: 0, total: plan.count, elapsed: 0});
  let result;
  try {
    result = await deblurPicture(picture, plan, model.runTile, {
      onTile: (done, total) => self.postMessage({type: 'progress', id, done, total,
        elapsed: (performance.now() - tilesStarted) / 1000}),
      isCancelled: () => cancelled.has(id),
    });
  } catch (error) {
    throw new Error(`${name}: LiteRT.js failed on a tile of ${model.description.model_file} (${error.message})`);
  }
  if (!result) {
    self.postMessage({type: 'cancelled', id});
    return;
  }
  picture.pixels = picture.alpha = null;
  const png = await (await encodePng(result)).arrayBuffer();
  self.postMessage({type: 'result', id, png, width: result.width, height: result.height, channels: result.channels,
    bitDepth: result.bitDepth, tiles: plan.count, tile, overlap, seconds: (performance.now() - started) / 1000,
    tileSeconds: (performance.now() - tilesStarted) / 1000, info: model.info}, [png]);
}

/** Handles one message from the page (errors are sent back with the message's id). */
export function onMessage(message) {
  if (message.type === 'cancel') {
    cancelled.add(message.id);
    return;
  }
  const handlers = {load, deblur};
  const handler = handlers[message.type] || (() => Promise.reject(new Error(`unknown message type ${message.type}`)));
  queue = queue.then(() => handler(message)).catch((error) => {
    self.postMessage({type: 'error', id: message.id, kind: error.name, message: error.message || String(error)});
  }).finally(() => cancelled.delete(message.id));
}
