/**
 * Server mode: the photo goes to TF Serving's REST API, signature `deblur_encoded`, through the
 * page's own same-origin `/proxy` route (TF Serving sends no CORS headers), as
 * ifan_tf/serving/client.py:RestClient.deblur_encoded does:
 *
 *   POST /proxy/v1/models/<model>:predict
 *   {"signature_name": "deblur_encoded", "instances": [{"b64": "<the file's bytes>"}]}
 *   -> {"predictions": [{"b64": "<PNG>"}]}  (or [{"png_bytes": {"b64": ...}}])
 *
 * An error answer (e.g. HTTP 400 {"error": "..."}) becomes an Error with TF Serving's text.
 */

/** The file's bytes as base64, encoded by the browser off the main thread. */
function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(',') + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function predictionBase64(prediction) {
  if (prediction && typeof prediction.b64 === 'string') return prediction.b64;
  if (prediction && prediction.png_bytes && typeof prediction.png_bytes.b64 === 'string') return prediction.png_bytes.b64;
  return null;
}

/**
 * Deblurs `file` on TF Serving.
 *
 * @param {Blob} file the photo (already checked: PNG or JPEG, within the size limit).
 * @param {string} name its name, for messages.
 * @param {object} options {model: TF Serving model name, maxRequestBytes: the proxy's cap or null,
 *   signal: an AbortSignal (cancel), onStatus(text)}.
 * @returns {Promise<Blob>} the deblurred PNG.
 */
export async function deblurOnServer(file, name, options) {
  const {model, maxRequestBytes, signal, onStatus = () => {}} = options;
  onStatus('encoding the photo');
  const body = JSON.stringify({signature_name: 'deblur_encoded', instances: [{b64: await fileToBase64(file)}]});
  if (maxRequestBytes && body.length > maxRequestBytes) {
    throw new Error(`${name}: the request would be ${(body.length / 2 ** 20).toFixed(1)} MB, more than the ` +
      `page's proxy limit of ${(maxRequestBytes / 2 ** 20).toFixed(1)} MB (--proxy_max_mb)`);
  }
  onStatus('waiting for TF Serving');
  const url = `/proxy/v1/models/${encodeURIComponent(model)}:predict`;
  const response = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}, body, signal});
  const text = await response.text();
  let reply = null;
  try {
    reply = JSON.parse(text);
  } catch (error) {
    reply = null;
  }
  if (!response.ok) {
    const detail = reply && reply.error ? reply.error : text.slice(0, 500) || response.statusText;
    throw new Error(`${name}: TF Serving answered HTTP ${response.status}: ${detail}`);
  }
  const b64 = reply && Array.isArray(reply.predictions) ? predictionBase64(reply.predictions[0]) : null;
  if (!b64) throw new Error(`${name}: TF Serving's answer has no predictions[0].b64 PNG (${text.slice(0, 200)})`);
  onStatus('decoding the answer');
  return (await fetch(`data:image/png;base64,${b64}`)).blob();
}
