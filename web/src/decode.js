/**
 * A photo file -> a "picture": integer pixels at the file's bit depth, never float.
 *
 * The header is read first (image_header.js) and the size limit checked before any decoding.
 * PNG goes through png_decode.js (8/16 bits exactly as stored); JPEG through the browser's decoder
 * (createImageBitmap, no colour-space conversion, EXIF orientation applied) and an OffscreenCanvas
 * read back a band of rows at a time.
 *
 * A picture is {width, height, bitDepth (8|16), channels (1|3), pixels (Uint8Array|Uint16Array
 * [height * width * channels]), alpha (same type [height * width]) or null, gray}; `gray` means the
 * result is written as a gray PNG (the file was gray without alpha), as `main.py --mode=predict` does.
 */

import {ImageError, checkPixelLimit, readImageHeader} from './image_header.js';
import {decodePng} from './png_decode.js';

const BAND_ROWS = 256;

async function decodeJpeg(file, header, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  } catch (error) {
    throw new ImageError(`${name}: corrupt JPEG, the browser cannot decode it (${error.message || error.name})`);
  }
  try {
    const {width, height} = bitmap;  // EXIF orientation may swap the header's width and height
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d', {willReadFrequently: true});
    context.drawImage(bitmap, 0, 0);
    const channels = header.gray ? 1 : 3;
    const pixels = new Uint8Array(width * height * channels);
    for (let top = 0; top < height; top += BAND_ROWS) {
      const rows = Math.min(BAND_ROWS, height - top);
      const rgba = context.getImageData(0, top, width, rows).data;
      let out = top * width * channels;
      for (let i = 0; i < rgba.length; i += 4) {
        pixels[out++] = rgba[i];
        if (channels === 3) {
          pixels[out++] = rgba[i + 1];
          pixels[out++] = rgba[i + 2];
        }
      }
    }
    return {width, height, bitDepth: 8, channels, pixels, alpha: null, gray: header.gray};
  } finally {
    bitmap.close();
  }
}

/**
 * Reads, checks and decodes a photo.
 *
 * @param {Blob} file the photo (PNG or JPEG).
 * @param {string} name its name, for messages.
 * @param {number} maxPixels the largest width * height accepted (checked from the header).
 * @param {function(object): void} [onHeader] called with the header once it has passed the checks.
 * @returns {Promise<object>} the picture.
 * @throws {ImageError} not an image, corrupt, unsupported or above the limit.
 */
export async function decodePicture(file, name, maxPixels, onHeader) {
  const header = await readImageHeader(file, name);
  checkPixelLimit(header, maxPixels, name);
  if (onHeader) onHeader(header);
  if (header.format === 'png') {
    return decodePng(new Uint8Array(await file.arrayBuffer()), header, name);
  }
  return decodeJpeg(file, header, name);
}
