// Runs the page's pure modules (web/src) in Node for tests/web: reads one JSON request on stdin,
// writes one JSON answer on stdout.
//   {"op": "plan", "cases": [[h, w, tile, overlap], ...]} -> [{rows, cols, padded, count}, ...]
//   {"op": "reflect", "cases": [[size, newSize], ...]} -> [[index, ...], ...]
//   {"op": "header", "files": [path, ...]} -> [{header} | {error, kind}, ...]  (PNG and JPEG)
//   {"op": "decode", "files": [path, ...], "max_pixels": n} -> [{header, picture: {..., pixels: base64}} | {error}]
//     (PNG only: JPEG needs the browser's decoder)
//   {"op": "encode", "image": {width, height, channels, bitDepth, pixels: base64 (little-endian)}} -> {png: base64}
import {openAsBlob, readFileSync} from 'node:fs';
import {basename} from 'node:path';
import {decodePicture} from '../../web/src/decode.js';
import {readImageHeader} from '../../web/src/image_header.js';
import {encodePng} from '../../web/src/png_encode.js';
import {imagePlan, reflectIndices} from '../../web/src/tile_plan.js';

const b64 = (typed) => Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('base64');
const axis = (plan) => ({starts: Array.from(plan.starts), length: plan.length, weights: Array.from(plan.weights)});

async function decodeFile(path, maxPixels, decode) {
  const blob = await openAsBlob(path);
  const name = basename(path);
  try {
    const header = await readImageHeader(blob, name);
    if (!decode) return {header};
    const picture = await decodePicture(blob, name, maxPixels);
    return {header, picture: {...picture, pixels: b64(picture.pixels), alpha: picture.alpha && b64(picture.alpha)}};
  } catch (error) {
    return {error: error.message, kind: error.name};
  }
}

const request = JSON.parse(readFileSync(0, 'utf8'));
let answer;
if (request.op === 'plan') {
  answer = request.cases.map(([height, width, tile, overlap]) => {
    const plan = imagePlan(height, width, tile, overlap);
    return {rows: axis(plan.rows), cols: axis(plan.cols), padded: [plan.paddedHeight, plan.paddedWidth], count: plan.count};
  });
} else if (request.op === 'reflect') {
  answer = request.cases.map(([size, newSize]) => Array.from(reflectIndices(size, newSize)));
} else if (request.op === 'header' || request.op === 'decode') {
  answer = [];
  for (const path of request.files) {
    answer.push(await decodeFile(path, request.max_pixels || 40e6, request.op === 'decode'));
  }
} else if (request.op === 'encode') {
  const image = request.image;
  const bytes = Buffer.from(image.pixels, 'base64');
  const Type = image.bitDepth === 16 ? Uint16Array : Uint8Array;
  const pixels = new Type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const png = new Uint8Array(await (await encodePng({...image, pixels})).arrayBuffer());
  answer = {png: b64(png)};
} else {
  throw new Error(`unknown op ${request.op}`);
}
process.stdout.write(JSON.stringify(answer));
