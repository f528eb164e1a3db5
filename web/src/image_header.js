/**
 * Image headers read before any pixel is decoded: PNG (IHDR) and JPEG (SOFn), from the first bytes
 * of a File/Blob, so a photo above the size limit, or a file that is not an image, is refused
 * without decoding it. Every error names the file and the problem.
 */

export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_DEPTHS = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]};
const PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4};
// SOF markers: baseline, extended, progressive, lossless, with Huffman or arithmetic coding (not DHT/JPG/DAC).
const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
const MAX_SIDE = 0x7fffffff;

/** A file that cannot be used: not an image, corrupt, unsupported or too large (message names the file). */
export class ImageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ImageError';
  }
}

async function readBytes(blob, offset, length) {
  return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
}

function hexStart(bytes) {
  return Array.from(bytes.slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function pngHeader(bytes, name) {
  if (bytes.length < 33) throw new ImageError(`${name}: truncated PNG (${bytes.length} bytes, no complete IHDR chunk)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(...bytes.slice(12, 16));
  if (type !== 'IHDR' || view.getUint32(8) !== 13) {
    throw new ImageError(`${name}: corrupt PNG (the first chunk is ${JSON.stringify(type)}, not a 13-byte IHDR)`);
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const [bitDepth, colorType, compression, filter, interlace] = bytes.slice(24, 29);
  if (!width || !height || width > MAX_SIDE || height > MAX_SIDE) {
    throw new ImageError(`${name}: corrupt PNG (declares a ${width}x${height} image)`);
  }
  if (!(colorType in PNG_DEPTHS) || !PNG_DEPTHS[colorType].includes(bitDepth)) {
    throw new ImageError(`${name}: corrupt PNG (colour type ${colorType} with bit depth ${bitDepth})`);
  }
  if (compression !== 0 || filter !== 0 || interlace > 1) {
    throw new ImageError(`${name}: corrupt PNG (compression ${compression}, filter ${filter}, interlace ${interlace})`);
  }
  return {
    format: 'png', width, height, bitDepth: bitDepth === 16 ? 16 : 8, sampleDepth: bitDepth, colorType,
    interlaced: interlace === 1, channels: PNG_CHANNELS[colorType], gray: colorType === 0,
  };
}

async function jpegHeader(blob, name) {
  let offset = 2;
  const size = blob.size;
  while (offset + 4 <= size) {
    const marker = await readBytes(blob, offset, 4);
    if (marker[0] !== 0xff) {
      throw new ImageError(`${name}: corrupt JPEG (no marker at byte ${offset}, found 0x${marker[0].toString(16)})`);
    }
    const code = marker[1];
    if (code === 0xff) {  // fill byte before a marker
      offset += 1;
      continue;
    }
    if (code === 0xd8 || code === 0x01 || (code >= 0xd0 && code <= 0xd7)) {  // markers without a length
      offset += 2;
      continue;
    }
    if (code === 0xd9 || code === 0xda) {
      throw new ImageError(`${name}: corrupt JPEG (${code === 0xda ? 'image data' : 'end of image'} before any frame header)`);
    }
    const length = (marker[2] << 8) | marker[3];
    if (length < 2) throw new ImageError(`${name}: corrupt JPEG (segment 0x${code.toString(16)} of length ${length})`);
    if (JPEG_SOF.has(code)) {
      const frame = await readBytes(blob, offset + 4, 6);
      if (frame.length < 6 || length < 8) throw new ImageError(`${name}: truncated JPEG (incomplete frame header)`);
      const precision = frame[0];
      const height = (frame[1] << 8) | frame[2];
      const width = (frame[3] << 8) | frame[4];
      const channels = frame[5];
      if (!width) throw new ImageError(`${name}: corrupt JPEG (frame width 0)`);
      if (!height) throw new ImageError(`${name}: JPEG whose height is given after the image data (DNL) is not supported`);
      if (precision !== 8) throw new ImageError(`${name}: ${precision}-bit JPEG is not supported (browsers decode 8-bit JPEG only)`);
      if (![1, 3, 4].includes(channels)) throw new ImageError(`${name}: corrupt JPEG (${channels} colour components)`);
      return {format: 'jpeg', width, height, bitDepth: 8, channels, gray: channels === 1, progressive: code === 0xc2};
    }
    offset += 2 + length;
  }
  throw new ImageError(`${name}: truncated JPEG (no frame header in ${size} bytes)`);
}

/**
 * Reads the header of a PNG or JPEG file without decoding it.
 *
 * @param {Blob} blob the file.
 * @param {string} name the file name, for messages.
 * @returns {Promise<object>} {format: 'png'|'jpeg', width, height, bitDepth (8|16), channels, gray, ...}
 * @throws {ImageError} not a PNG or JPEG, or a corrupt header.
 */
export async function readImageHeader(blob, name) {
  if (!blob.size) throw new ImageError(`${name}: empty file (0 bytes), not an image`);
  const start = await readBytes(blob, 0, 33);
  if (PNG_SIGNATURE.every((b, i) => start[i] === b)) return pngHeader(start, name);
  if (start[0] === 0xff && start[1] === 0xd8 && start[2] === 0xff) return jpegHeader(blob, name);
  throw new ImageError(`${name}: not a PNG or JPEG image (it starts with bytes ${hexStart(start)})`);
}

/** Megapixels with at most two decimals: 40, 40.01, 0.5. */
export function megapixels(pixels) {
  return String(Number((pixels / 1e6).toFixed(2)));
}

/** Throws ImageError when `header` has more pixels than `maxPixels` (the message gives both sizes). */
export function checkPixelLimit(header, maxPixels, name) {
  const pixels = header.width * header.height;
  if (pixels > maxPixels) {
    throw new ImageError(`${name}: ${header.width}x${header.height} pixels (${megapixels(pixels)} MP) is more than ` +
      `the limit of ${megapixels(maxPixels)} MP for this page; crop or downscale it, or use ` +
      '`main.py --mode=predict` for large photos');
  }
}
