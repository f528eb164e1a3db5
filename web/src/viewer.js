/**
 * Before/after viewer: the input and the result at the same zoom and position, either overlaid with
 * a split line (slider mode) or side by side. Zoom from "fit" (or 1:1 if smaller) up to 16x; "1:1" shows one image
 * pixel per screen pixel (full resolution); drag pans, the wheel zooms about the pointer.
 */

const MAX_ZOOM = 16;

export class CompareViewer {
  /**
   * @param {object} elements {viewer, before, after, split, viewMode, zoomLevel} DOM elements.
   */
  constructor(elements) {
    Object.assign(this, elements);
    this.width = 0;
    this.height = 0;
    this.zoom = 1;
    this.x = 0;
    this.y = 0;
    this.split.addEventListener('input', () => this.setSplit(Number(this.split.value)));
    this.viewMode.addEventListener('change', () => this.setMode(this.viewMode.value));
    this.viewer.addEventListener('wheel', (event) => this.onWheel(event), {passive: false});
    this.viewer.addEventListener('pointerdown', (event) => this.onPointerDown(event));
    new ResizeObserver(() => this.width && this.apply()).observe(this.viewer);
  }

  /** Shows two images of `width` x `height` pixels and fits them to the viewer. */
  show(beforeUrl, afterUrl, width, height) {
    this.width = width;
    this.height = height;
    this.before.src = beforeUrl;
    this.after.src = afterUrl;
    for (const image of [this.before, this.after]) {
      image.width = width;
      image.height = height;
    }
    this.setSplit(Number(this.split.value));
    this.fit();
  }

  /** Size of one pane (the whole viewer in slider mode, half of it side by side). */
  paneSize() {
    const pane = this.before.parentElement;
    return {w: pane.clientWidth || 1, h: pane.clientHeight || 1};
  }

  fitZoom() {
    const {w, h} = this.paneSize();
    return Math.min(w / this.width, h / this.height);
  }

  /** Whole image visible, centred. */
  fit() {
    this.zoom = this.fitZoom();
    this.center();
  }

  /** One image pixel per device pixel, keeping the point at the pane's centre in place. */
  actualSize() {
    const {w, h} = this.paneSize();
    this.zoomAbout(1 / (window.devicePixelRatio || 1), w / 2, h / 2);
  }

  zoomBy(factor) {
    const {w, h} = this.paneSize();
    this.zoomAbout(this.zoom * factor, w / 2, h / 2);
  }

  center() {
    const {w, h} = this.paneSize();
    this.x = (w - this.width * this.zoom) / 2;
    this.y = (h - this.height * this.zoom) / 2;
    this.apply();
  }

  /** Sets the zoom, keeping pane point (px, py) over the same image point. */
  zoomAbout(zoom, px, py) {
    const next = Math.min(MAX_ZOOM, Math.max(Math.min(this.fitZoom(), 1), zoom));
    this.x = px - ((px - this.x) * next) / this.zoom;
    this.y = py - ((py - this.y) * next) / this.zoom;
    this.zoom = next;
    this.apply();
  }

  /** Keeps the image on screen, then moves both images. */
  apply() {
    const {w, h} = this.paneSize();
    const iw = this.width * this.zoom, ih = this.height * this.zoom;
    this.x = iw <= w ? (w - iw) / 2 : Math.min(0, Math.max(w - iw, this.x));
    this.y = ih <= h ? (h - ih) / 2 : Math.min(0, Math.max(h - ih, this.y));
    const transform = `translate(${this.x}px, ${this.y}px) scale(${this.zoom})`;
    this.before.style.transform = transform;
    this.after.style.transform = transform;
    this.viewer.classList.toggle('pixelated', this.zoom >= 2);
    this.zoomLevel.textContent = `${Math.round(this.zoom * (window.devicePixelRatio || 1) * 100)} %`;
  }

  setSplit(percent) {
    this.viewer.style.setProperty('--split', `${percent}%`);
  }

  setMode(mode) {
    this.viewer.classList.toggle('slider-mode', mode === 'slider');
    this.viewer.classList.toggle('side-mode', mode === 'side');
    this.split.disabled = mode !== 'slider';
    if (this.width) this.fit();
  }

  onWheel(event) {
    if (!this.width) return;
    event.preventDefault();
    const pane = event.target.closest('.pane') || this.before.parentElement;
    const rect = pane.getBoundingClientRect();
    this.zoomAbout(this.zoom * Math.pow(1.0015, -event.deltaY), event.clientX - rect.left, event.clientY - rect.top);
  }

  onPointerDown(event) {
    if (!this.width || event.button !== 0) return;
    const start = {x: event.clientX, y: event.clientY, ox: this.x, oy: this.y};
    this.viewer.setPointerCapture(event.pointerId);
    this.viewer.classList.add('panning');
    const move = (e) => {
      this.x = start.ox + e.clientX - start.x;
      this.y = start.oy + e.clientY - start.y;
      this.apply();
    };
    const up = () => {
      this.viewer.classList.remove('panning');
      this.viewer.removeEventListener('pointermove', move);
      this.viewer.removeEventListener('pointerup', up);
      this.viewer.removeEventListener('pointercancel', up);
    };
    this.viewer.addEventListener('pointermove', move);
    this.viewer.addEventListener('pointerup', up);
    this.viewer.addEventListener('pointercancel', up);
  }
}
