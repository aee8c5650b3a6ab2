// ModelExplorer: a chapter's trained model, run in the reader's browser on any digit the reader draws
// (visual_attention.views.model_explorer). The model is a graph exported from PyTorch and run by
// model_runtime.js (prepended to this module by the Python class); it may carry several heads on one
// encoder (e.g. attention pooling and a gate), each with its logits and its map. On every change of
// the input — a stroke (mouse, touch or pen), a test example, noise, a move — the page runs the
// model once per animation frame and draws what it computes: the chosen head's map over the input
// the model saw, and for every head its prediction and the share of its map inside the ink's box.
// The latest result is left on the root element as `vaState` (the browser tests read the
// rasterised input back from it).

const EXPLORER_CSS = `
.va-mx{font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:inherit;max-width:100%}
.va-mx-controls{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin-bottom:8px}
.va-mx-controls label{display:flex;gap:6px;align-items:center;white-space:nowrap}
.va-mx-controls button{font:inherit;padding:1px 8px}
.va-mx-main{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.va-mx-stage{position:relative;flex:none;cursor:crosshair;touch-action:none;outline-offset:2px;background:#000}
.va-mx-stage:focus-visible{outline:2px solid #39d0ff}
.va-mx-stage canvas{position:absolute;inset:0;width:100%;height:100%;image-rendering:pixelated}
.va-mx-box{position:absolute;box-sizing:border-box;border:2px dashed #39d0ff;pointer-events:none}
.va-mx-side{display:flex;flex-direction:column;gap:8px;min-width:220px}
.va-mx-title{font-weight:600}
.va-mx-row{display:flex;align-items:center;gap:6px;height:17px;font-size:12px}
.va-mx-name{width:64px;text-align:right;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.va-mx-track{position:relative;width:140px;height:11px;background:rgba(127,127,127,.15)}
.va-mx-bar{position:absolute;left:0;top:1px;bottom:1px;background:#5b8c5a}
.va-mx-top .va-mx-bar{background:#d9534f}
.va-mx-num{width:48px;font-family:monospace}
.va-mx-note{font-size:12px;max-width:320px}
`;

function mxFloats(view) {
  if (view == null) return new Float32Array(0);
  const buf = view.buffer ? view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) : view;
  return new Float32Array(buf);
}

function mxBytes(view) {
  if (view == null) return new Uint8Array(0);
  return view.buffer ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength) : new Uint8Array(view);
}

function mxEl(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v;
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// Ink along the segment (x0, y0) → (x1, y1), in input pixels: a round brush of radius r whose
// value falls from 1 inside r − 0.5 to 0 at r + 0.5 (anti-aliased); pixels keep the larger value.
export function stroke(input, H, W, x0, y0, x1, y1, r) {
  const lo = (a, b) => Math.max(0, Math.floor(Math.min(a, b) - r - 1));
  const r0 = lo(y0, y1), c0 = lo(x0, x1);
  const r1 = Math.min(H - 1, Math.ceil(Math.max(y0, y1) + r + 1)), c1 = Math.min(W - 1, Math.ceil(Math.max(x0, x1) + r + 1));
  const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  for (let i = r0; i <= r1; i++) {
    for (let j = c0; j <= c1; j++) {
      const px = j + 0.5, py = i + 0.5;
      const t = len2 ? Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / len2)) : 0;
      const d = Math.hypot(px - (x0 + t * dx), py - (y0 + t * dy));
      const v = Math.max(0, Math.min(1, r + 0.5 - d));
      if (v > input[i * W + j]) input[i * W + j] = v;
    }
  }
}

// The digit's box: rows and columns holding ink above `level`, as [top, left, bottom, right)
export function inkBox(input, H, W, level = 0.3) {
  let t = H, l = W, b = -1, r = -1;
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    if (input[i * W + j] > level) { t = Math.min(t, i); b = Math.max(b, i); l = Math.min(l, j); r = Math.max(r, j); }
  }
  return b < 0 ? null : [t, l, b + 1, r + 1];
}

// Share of an (h, w) map's mass inside a box of the (H, W) input (each cell covers H/h × W/w
// pixels), as visual_attention.spatial.attention_mass_in_box computes it.
export function massInBox(map, h, w, H, W, box) {
  if (!box) return 0;
  let inside = 0, total = 0;
  const sh = H / h, sw = W / w;
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    const v = map[Math.floor(i / sh) * w + Math.floor(j / sw)];
    total += v;
    if (i >= box[0] && i < box[2] && j >= box[1] && j < box[3]) inside += v;
  }
  return total > 0 ? inside / total : 0;
}

function render({ model, el: host }) {
  const graph = model.get("graph");
  const net = loadModel(graph, mxFloats(model.get("weights")));
  const [H, W] = model.get("canvas");
  const examples = mxFloats(model.get("examples"));
  const exampleLabels = model.get("example_labels");
  const classNames = model.get("class_names");
  const [dispH, dispW] = model.get("display_size");
  const lut = mxBytes(model.get("colormap"));
  const heads = model.get("heads"); // [{name, logits, map}]
  const input = new Float32Array(H * W);
  const setExample = (i) => { input.set(examples.subarray(i * H * W, (i + 1) * H * W)); };

  const root = mxEl("div", { className: "va-mx" }, mxEl("style", {}, EXPLORER_CSS));
  const exampleSel = mxEl("select", { "aria-label": "test example" });
  exampleLabels.forEach((y, i) => exampleSel.append(mxEl("option", { value: String(i) }, `#${i} (${classNames[y] ?? y})`)));
  const clearBtn = mxEl("button", { type: "button" }, "clear");
  const noiseBtn = mxEl("button", { type: "button" }, "add noise");
  const moves = [["←", 0, -2], ["→", 0, 2], ["↑", -2, 0], ["↓", 2, 0]].map(([t, di, dj]) => {
    const b = mxEl("button", { type: "button", "aria-label": `move ${t}` }, t);
    b.addEventListener("click", () => { shift(di, dj); update(); });
    return b;
  });
  const headSel = mxEl("select", { "aria-label": "map of" });
  heads.forEach((hd, i) => headSel.append(mxEl("option", { value: String(i) }, hd.name)));
  root.append(mxEl("div", { className: "va-mx-controls" },
    mxEl("label", {}, "example", exampleSel), clearBtn, noiseBtn, mxEl("span", {}, "move", ...moves),
    ...(heads.length > 1 ? [mxEl("label", {}, "map of", headSel)] : [])));

  const stage = mxEl("div", { className: "va-mx-stage", tabIndex: 0, style: `width:${dispW}px;height:${dispH}px`,
    "aria-label": "draw a digit here (mouse, touch or pen)" });
  const inkCanvas = mxEl("canvas", { width: W, height: H });
  const mapCanvas = mxEl("canvas", { style: `opacity:${model.get("alpha")}` });
  const boxEl = mxEl("div", { className: "va-mx-box" });
  stage.append(inkCanvas, mapCanvas, boxEl);
  const side = mxEl("div", { className: "va-mx-side" });
  const summary = mxEl("div");
  const predTitle = mxEl("div", { className: "va-mx-title" });
  const bars = mxEl("div");
  const massNote = mxEl("div", { className: "va-mx-note" });
  side.append(summary, predTitle, bars, massNote, mxEl("div", { className: "va-mx-note" }, model.get("caption")));
  root.append(mxEl("div", { className: "va-mx-main" }, stage, side));
  host.append(root);

  function shift(di, dj) {
    const old = input.slice();
    input.fill(0);
    for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
      const si = i - di, sj = j - dj;
      if (si >= 0 && si < H && sj >= 0 && sj < W) input[i * W + j] = old[si * W + sj];
    }
  }

  let noiseSeed = 1;
  function addNoise() { // a small linear congruential generator: the same noise in every browser
    for (let k = 0; k < input.length; k++) {
      noiseSeed = (noiseSeed * 1664525 + 1013904223) >>> 0;
      if (noiseSeed / 4294967296 < 0.04) input[k] = Math.max(input[k], 0.5 + (noiseSeed % 1000) / 2000);
    }
  }

  let pending = false;
  function update() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; compute(); });
  }

  function compute() {
    const t0 = performance.now();
    const out = net.run(input, [1, 1, H, W]);
    const ms = performance.now() - t0;
    const box = inkBox(input, H, W);
    const results = heads.map((hd) => {
      const map = out[hd.map], logits = out[hd.logits].data;
      const [h, w] = map.shape.slice(-2);
      const m = Math.max(...logits), e = Array.from(logits, (z) => Math.exp(z - m)), s = e.reduce((a, b) => a + b, 0);
      const probs = e.map((v) => v / s), best = probs.indexOf(Math.max(...probs));
      return { name: hd.name, map, h, w, probs, prediction: best, mass: massInBox(map.data, h, w, H, W, box) };
    });
    const chosen = results[Number(headSel.value) || 0], { map, h, w, probs } = chosen, best = chosen.prediction;
    // the input the model saw, in grey
    const ink = inkCanvas.getContext("2d"), img = ink.createImageData(W, H);
    for (let k = 0; k < H * W; k++) {
      const g = Math.round(255 * Math.max(0, Math.min(1, input[k])));
      img.data.set([g, g, g, 255], 4 * k);
    }
    ink.putImageData(img, 0, 0);
    // the attention map, coloured by the book's colour map (scaled to its largest weight)
    mapCanvas.width = w; mapCanvas.height = h;
    const mctx = mapCanvas.getContext("2d"), mimg = mctx.createImageData(w, h);
    let top = 0;
    for (let k = 0; k < h * w; k++) top = Math.max(top, map.data[k]);
    for (let k = 0; k < h * w; k++) {
      const c = Math.min(255, Math.round((255 * map.data[k]) / (top || 1)));
      mimg.data.set([lut[3 * c], lut[3 * c + 1], lut[3 * c + 2], 255], 4 * k);
    }
    mctx.putImageData(mimg, 0, 0);
    // every head's prediction and mass in the box; the chosen head's probabilities
    summary.replaceChildren(...(results.length > 1 ? results.map((r) => mxEl("div", { className: "va-mx-row" },
      mxEl("span", { style: "font-weight:600;min-width:120px" }, r.name),
      mxEl("span", {}, `says ${classNames[r.prediction] ?? r.prediction} (${(100 * r.probs[r.prediction]).toFixed(0)} %), ${(100 * r.mass).toFixed(0)} % of its map in the box`))) : []));
    predTitle.textContent = `${chosen.name}: ${classNames[best] ?? best} (${(100 * probs[best]).toFixed(0)} %)`;
    bars.replaceChildren(...probs.map((p, k) => mxEl("div", { className: `va-mx-row${k === best ? " va-mx-top" : ""}` },
      mxEl("span", { className: "va-mx-name" }, String(classNames[k] ?? k)),
      mxEl("span", { className: "va-mx-track" }, mxEl("span", { className: "va-mx-bar", style: `width:${(100 * p).toFixed(1)}%` })),
      mxEl("span", { className: "va-mx-num", "data-value": p.toFixed(6) }, p.toFixed(3)))));
    // the digit's box and the attention inside it
    const mass = chosen.mass;
    boxEl.style.display = box ? "" : "none";
    if (box) Object.assign(boxEl.style, { top: `${(100 * box[0]) / H}%`, left: `${(100 * box[1]) / W}%`,
      height: `${(100 * (box[2] - box[0])) / H}%`, width: `${(100 * (box[3] - box[1])) / W}%` });
    massNote.textContent = box
      ? `${chosen.name}: ${(100 * mass).toFixed(1)} % of the map inside the ink's box (the box covers ${(100 * (box[2] - box[0]) * (box[3] - box[1]) / (H * W)).toFixed(1)} % of the canvas)`
      : "draw a digit: no ink yet";
    root.vaState = { input: Array.from(input), outputs: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }])),
      box, mass, probs, prediction: best, ms,
      heads: results.map((r) => ({ name: r.name, probs: r.probs, prediction: r.prediction, mass: r.mass })) };
  }

  // drawing: pointer events cover mouse, touch and pen
  let last = null;
  const toInput = (ev) => {
    const r = stage.getBoundingClientRect();
    return [((ev.clientX - r.left) / r.width) * W, ((ev.clientY - r.top) / r.height) * H];
  };
  const brush = model.get("brush");
  stage.addEventListener("pointerdown", (ev) => {
    stage.setPointerCapture(ev.pointerId);
    last = toInput(ev);
    stroke(input, H, W, last[0], last[1], last[0], last[1], brush);
    update();
  });
  stage.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = toInput(ev);
    stroke(input, H, W, last[0], last[1], p[0], p[1], brush);
    last = p;
    update();
  });
  const end = () => { last = null; };
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  stage.addEventListener("keydown", (ev) => {
    const step = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[ev.key];
    if (!step) return;
    ev.preventDefault();
    shift(step[0], step[1]);
    update();
  });
  exampleSel.addEventListener("change", () => { setExample(Number(exampleSel.value)); update(); });
  headSel.addEventListener("change", update);
  clearBtn.addEventListener("click", () => { input.fill(0); update(); });
  noiseBtn.addEventListener("click", () => { addNoise(); update(); });
  setExample(0);
  compute();
}

export default { render };
