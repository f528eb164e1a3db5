// The page's Web Worker (a classic worker: LiteRT.js loads its Emscripten script with
// importScripts, which module workers do not have). Everything else is in the ES module
// worker_main.js; messages wait until it is loaded and keep their order.
'use strict';
const workerMain = import('./worker_main.js');
self.onmessage = (event) => {
  workerMain.then((module) => module.onMessage(event.data), (error) => {
    self.postMessage({type: 'error', id: event.data && event.data.id,
      message: `web worker: cannot load worker_main.js (${error.message})`});
  });
};
