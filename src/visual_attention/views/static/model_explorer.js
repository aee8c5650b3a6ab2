// ModelExplorer: a chapter's trained model, run in the reader's browser on any input the reader draws
// (visual_attention.views.model_explorer). The model is a graph exported from PyTorch and run by
// model_runtime.js (prepended to this module by the Python class). Its input is one canvas
// (1, 1, H, W) or S canvases (1, S, 1, H, W) — sensors, frames — and the reader draws on one at a
// time. On every change — a stroke (mouse, touch or pen), a test example, noise, a move, a resize,
// a copied frame — the page runs the model once per animation frame and draws the views the
// chapter asked for: probabilities, a map over the input, every head's map, bars, memory slots,
// detections (every object query's box, class and map).
// Every number shown is an output of the model; the page only draws. The latest result is left
// on the root element as `vaState` (the browser tests read the rasterised input back from it).

const EXPLORER_CSS = `
.va-mx{font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:inherit;max-width:100%}
.va-mx-controls{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin-bottom:8px}
.va-mx-controls label,.va-mx-group{display:flex;gap:4px;align-items:center;white-space:nowrap}
.va-mx-controls button{font:inherit;padding:1px 8px}
.va-mx-main{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.va-mx-left{display:flex;flex-direction:column;gap:8px}
.va-mx-stage{position:relative;flex:none;cursor:crosshair;touch-action:none;outline-offset:2px;background:#000}
.va-mx-stage:focus-visible{outline:2px solid #39d0ff}
.va-mx-stage canvas,.va-mx-pic canvas{position:absolute;inset:0;width:100%;height:100%;image-rendering:pixelated}
.va-mx-box{position:absolute;box-sizing:border-box;border:2px dashed #39d0ff;pointer-events:none}
.va-mx-strip{display:flex;flex-wrap:wrap;gap:6px}
.va-mx-thumb{display:flex;flex-direction:column;align-items:center;gap:2px;font:inherit;font-size:11px;padding:2px;border:2px solid transparent;background:none;cursor:pointer;color:inherit}
.va-mx-thumb[aria-pressed=true]{border-color:#39d0ff}
.va-mx-pic{position:relative;background:#000;flex:none}
.va-mx-side{display:flex;flex-direction:column;gap:8px;min-width:220px}
.va-mx-title{font-weight:600}
.va-mx-row{display:flex;align-items:center;gap:6px;min-height:17px;font-size:12px}
.va-mx-name{width:64px;flex:none;text-align:right;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.va-mx-wide .va-mx-name{width:150px}
.va-mx-track{position:relative;width:140px;height:11px;flex:none;background:rgba(127,127,127,.15)}
.va-mx-bar{position:absolute;left:0;top:1px;bottom:1px;background:#5b8c5a}
.va-mx-top .va-mx-bar{background:#d9534f}
.va-mx-num{width:48px;flex:none;font-family:monospace}
.va-mx-note{font-size:12px;max-width:360px}
.va-mx-grid{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
.va-mx-cell{display:flex;flex-direction:column;gap:2px;font-size:11px;max-width:180px}
.va-mx-heat{display:block;height:14px;width:320px;image-rendering:pixelated}
.va-mx-dets{position:absolute;inset:0;pointer-events:none}
.va-mx-det{position:absolute;box-sizing:border-box;border:2px solid;pointer-events:none}
.va-mx-det.va-mx-none{border-style:dashed;opacity:.7}
.va-mx-det span{position:absolute;left:0;top:0;font:11px/13px monospace;padding:0 2px;color:#000;white-space:nowrap}
`;
const DET_COLOURS = ["#39d0ff", "#7CFC00", "#ff6f61", "#ffd23f", "#c77dff", "#ff9f1c", "#2ec4b6", "#f15bb5"];

// A detection's box (cx, cy, w, h; fractions of the canvas) as a frame over `parent`, clipped to it
function detBox(parent, b, colour, text, none) {
  const x0 = Math.max(0, b[0] - b[2] / 2), y0 = Math.max(0, b[1] - b[3] / 2);
  const x1 = Math.min(1, b[0] + b[2] / 2), y1 = Math.min(1, b[1] + b[3] / 2);
  const node = mxEl("div", { className: `va-mx-det${none ? " va-mx-none" : ""}`, style: `left:${(100 * x0).toFixed(2)}%;top:${(100 * y0).toFixed(2)}%;` +
    `width:${(100 * Math.max(0, x1 - x0)).toFixed(2)}%;height:${(100 * Math.max(0, y1 - y0)).toFixed(2)}%;border-color:${colour}` });
  if (text) node.append(mxEl("span", { style: `background:${colour}` }, text));
  parent.append(node);
}

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

// The canvas resized by `factor` about the centre of its ink (bilinear; outside is blank)
export function rescale(input, H, W, factor) {
  const box = inkBox(input, H, W, 0.05);
  const cy = box ? (box[0] + box[2]) / 2 : H / 2, cx = box ? (box[1] + box[3]) / 2 : W / 2;
  const out = new Float32Array(H * W);
  const at = (i, j) => (i < 0 || j < 0 || i >= H || j >= W ? 0 : input[i * W + j]);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    const y = cy + (i + 0.5 - cy) / factor - 0.5, x = cx + (j + 0.5 - cx) / factor - 0.5;
    const i0 = Math.floor(y), j0 = Math.floor(x), fy = y - i0, fx = x - j0;
    out[i * W + j] = (1 - fy) * ((1 - fx) * at(i0, j0) + fx * at(i0, j0 + 1)) + fy * ((1 - fx) * at(i0 + 1, j0) + fx * at(i0 + 1, j0 + 1));
  }
  return out;
}

function probabilities(logits) {
  const m = Math.max(...logits), e = Array.from(logits, (z) => Math.exp(z - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function argmax(values) {
  let best = 0;
  for (let k = 1; k < values.length; k++) if (values[k] > values[best]) best = k;
  return best;
}

// A picture: the input in grey, and optionally a map over it in the book's colour map (scaled to
// its largest value) — two stacked canvases, the map's opacity `alpha`.
function makePicture(width, height, alpha) {
  const ink = mxEl("canvas"), heat = mxEl("canvas", { style: `opacity:${alpha}` });
  const node = mxEl("div", { className: "va-mx-pic", style: `width:${width}px;height:${height}px` }, ink, heat);
  return { node, ink, heat };
}

function paintInk(canvas, data, H, W) {
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H);
  for (let k = 0; k < H * W; k++) {
    const g = Math.round(255 * Math.max(0, Math.min(1, data[k])));
    img.data[4 * k] = img.data[4 * k + 1] = img.data[4 * k + 2] = g;
    img.data[4 * k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function paintHeat(canvas, data, h, w, lut) {
  if (!data) { canvas.style.display = "none"; return; }
  canvas.style.display = "";
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  let top = 0;
  for (let k = 0; k < h * w; k++) top = Math.max(top, data[k]);
  for (let k = 0; k < h * w; k++) {
    const c = Math.max(0, Math.min(255, Math.round((255 * data[k]) / (top || 1))));
    img.data[4 * k] = lut[3 * c]; img.data[4 * k + 1] = lut[3 * c + 1]; img.data[4 * k + 2] = lut[3 * c + 2];
    img.data[4 * k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function barRows(values, labels, vmax, best, wide) {
  return mxEl("div", { className: wide ? "va-mx-wide" : "" }, ...Array.from(values, (p, k) => mxEl("div", { className: `va-mx-row${k === best ? " va-mx-top" : ""}` },
    mxEl("span", { className: "va-mx-name", title: String(labels[k] ?? k) }, String(labels[k] ?? k)),
    mxEl("span", { className: "va-mx-track" }, mxEl("span", { className: "va-mx-bar", style: `width:${Math.max(0, Math.min(100, (100 * p) / vmax)).toFixed(1)}%` })),
    mxEl("span", { className: "va-mx-num", "data-value": p.toFixed(6) }, p.toFixed(3)))));
}

const pct = (v) => `${(100 * v).toFixed(0)} %`;

function render({ model, el: host }) {
  const net = loadModel(model.get("graph"), mxFloats(model.get("weights")));
  const [H, W] = model.get("canvas");
  const S = model.get("canvases");
  const canvasNames = model.get("canvas_names");
  const examples = mxFloats(model.get("examples"));
  const exampleNames = model.get("example_names");
  const views = model.get("views");
  const slotImages = mxFloats(model.get("images"));
  const [dispH, dispW] = model.get("display_size");
  const lut = mxBytes(model.get("colormap"));
  const alpha = model.get("alpha");
  const shape = S === 1 ? [1, 1, H, W] : [1, S, 1, H, W];
  const input = new Float32Array(S * H * W);
  let current = 0; // the canvas the reader draws on
  const plane = (s) => input.subarray(s * H * W, (s + 1) * H * W);
  const setExample = (i) => { input.set(examples.subarray(i * S * H * W, (i + 1) * S * H * W)); };

  // controls
  const root = mxEl("div", { className: "va-mx" }, mxEl("style", {}, EXPLORER_CSS));
  const exampleSel = mxEl("select", { "aria-label": "test example" });
  exampleNames.forEach((name, i) => exampleSel.append(mxEl("option", { value: String(i) }, name)));
  const button = (text, label, action) => {
    const b = mxEl("button", { type: "button", "aria-label": label }, text);
    b.addEventListener("click", () => { action(); update(); });
    return b;
  };
  const moves = [["←", 0, -2], ["→", 0, 2], ["↑", -2, 0], ["↓", 2, 0]].map(([t, di, dj]) => button(t, `move ${t}`, () => shift(di, dj)));
  const sizes = [["−", "shrink", 1 / 1.2], ["+", "grow", 1.2]].map(([t, label, f]) => button(t, label, () => plane(current).set(rescale(plane(current), H, W, f))));
  const mapViews = views.filter((v) => v.kind === "map"), probViews = views.filter((v) => v.kind === "probs");
  const mapSel = mxEl("select", { "aria-label": "map of" });
  mapViews.forEach((v, i) => mapSel.append(mxEl("option", { value: String(i) }, v.name)));
  const probSel = mxEl("select", { "aria-label": "probabilities of" });
  probViews.forEach((v, i) => probSel.append(mxEl("option", { value: String(i) }, v.name)));
  const controls = [mxEl("label", {}, "example", exampleSel),
    button("clear", S > 1 ? `clear ${canvasNames[0]}` : "clear", () => plane(current).fill(0)),
    button("add noise", "add noise", () => addNoise(plane(current))),
    mxEl("span", { className: "va-mx-group" }, "move", ...moves),
    mxEl("span", { className: "va-mx-group" }, "size", ...sizes)];
  const clearBtn = controls[1];
  if (S > 1) controls.push(button("copy to next", "copy to next", () => {
    const next = (current + 1) % S;
    plane(next).set(plane(current));
    select(next);
  }));
  if (mapViews.length > 1) controls.push(mxEl("label", {}, "map of", mapSel));
  if (probViews.length > 1) controls.push(mxEl("label", {}, "probabilities of", probSel));
  root.append(mxEl("div", { className: "va-mx-controls" }, ...controls));

  // the stage (the canvas being drawn on), the other canvases, the readouts
  const stage = mxEl("div", { className: "va-mx-stage", tabIndex: 0, style: `width:${dispW}px;height:${dispH}px`,
    "aria-label": "draw here (mouse, touch or pen)" });
  const inkCanvas = mxEl("canvas"), mapCanvas = mxEl("canvas", { style: `opacity:${alpha}` });
  const boxEl = mxEl("div", { className: "va-mx-box" });
  const detLayer = mxEl("div", { className: "va-mx-dets" }); // the detections of boxes views
  stage.append(inkCanvas, mapCanvas, boxEl, detLayer);
  const left = mxEl("div", { className: "va-mx-left" }, stage);
  const thumbs = [];
  if (S > 1) {
    const strip = mxEl("div", { className: "va-mx-strip", role: "group", "aria-label": "canvases" });
    const side = Math.max(32, Math.min(64, Math.floor((dispW - 6 * 3) / 4)));
    for (let s = 0; s < S; s++) {
      const pic = makePicture(side, Math.round((side * H) / W), alpha);
      const value = mxEl("span", {}, canvasNames[s]);
      const t = mxEl("button", { type: "button", className: "va-mx-thumb", "aria-label": `draw on ${canvasNames[s]}`, "aria-pressed": String(s === 0) }, pic.node, value);
      t.addEventListener("click", () => { select(s); update(); });
      strip.append(t);
      thumbs.push({ node: t, pic, value });
    }
    left.append(strip);
  }
  const side = mxEl("div", { className: "va-mx-side" });
  const summary = mxEl("div"), predTitle = mxEl("div", { className: "va-mx-title" }), predBars = mxEl("div");
  const massNote = mxEl("div", { className: "va-mx-note" });
  const barBlocks = views.filter((v) => v.kind === "bars").map(() => mxEl("div"));
  side.append(summary, predTitle, predBars, massNote, ...barBlocks, mxEl("div", { className: "va-mx-note" }, model.get("caption")));
  root.append(mxEl("div", { className: "va-mx-main" }, left, side));
  const belowViews = views.filter((v) => ["maps", "slots", "tokens", "lens", "boxes"].includes(v.kind));
  const below = belowViews.map(() => mxEl("div"));
  const queries = belowViews.map((v) => v.query ?? 0); // the query token each tokens view shows
  root.append(...below);
  host.append(root);

  function select(s) {
    current = s;
    thumbs.forEach((t, k) => t.node.setAttribute("aria-pressed", String(k === s)));
    stage.setAttribute("aria-label", `draw on ${canvasNames[s]} (mouse, touch or pen)`);
    clearBtn.setAttribute("aria-label", S > 1 ? `clear ${canvasNames[s]}` : "clear");
  }

  function shift(di, dj) {
    const p = plane(current), old = p.slice();
    p.fill(0);
    for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
      const si = i - di, sj = j - dj;
      if (si >= 0 && si < H && sj >= 0 && sj < W) p[i * W + j] = old[si * W + sj];
    }
  }

  let noiseSeed = 1;
  function addNoise(p) { // a small linear congruential generator: the same noise in every browser
    for (let k = 0; k < p.length; k++) {
      noiseSeed = (noiseSeed * 1664525 + 1013904223) >>> 0;
      if (noiseSeed / 4294967296 < 0.04) p[k] = Math.max(p[k], 0.5 + (noiseSeed % 1000) / 2000);
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
    const out = net.run(input, shape);
    const ms = performance.now() - t0;
    const boxes = Array.from({ length: S }, (_, s) => inkBox(plane(s), H, W));
    const shown = []; // per view, what the page shows (for vaState)
    // probabilities: a line per probs view, bars for the chosen one
    const probs = probViews.map((v) => { const p = probabilities(out[v.output].data); return { view: v, p, best: argmax(p) }; });
    probs.forEach((r) => shown.push({ name: r.view.name, kind: "probs", data: r.p, prediction: r.best }));
    if (probs.length) {
      const chosen = probs[Number(probSel.value) || 0];
      summary.replaceChildren(...(probs.length > 1 ? probs.map((r) => mxEl("div", { className: "va-mx-row" },
        mxEl("span", { style: "font-weight:600;min-width:120px" }, r.view.name),
        mxEl("span", {}, `says ${r.view.classes[r.best] ?? r.best} (${pct(r.p[r.best])})`))) : []));
      predTitle.textContent = `${chosen.view.name}: ${chosen.view.classes[chosen.best] ?? chosen.best} (${pct(chosen.p[chosen.best])})`;
      predBars.replaceChildren(barRows(chosen.p, chosen.view.classes, 1, chosen.best, false));
    }
    // maps over the stage: the chosen one, if it is about the canvas on the stage
    const mapped = mapViews.map((v) => {
      const m = out[v.output], [h, w] = m.shape.slice(-2);
      return { view: v, data: m.data, h, w, mass: massInBox(m.data, h, w, H, W, boxes[v.canvas]) };
    });
    mapped.forEach((r) => shown.push({ name: r.view.name, kind: "map", data: Array.from(r.data), mass: r.mass }));
    const chosenMap = mapped[Number(mapSel.value) || 0];
    const onStage = chosenMap && chosenMap.view.canvas === current ? chosenMap : null;
    paintInk(inkCanvas, plane(current), H, W);
    paintHeat(mapCanvas, onStage && onStage.data, onStage && onStage.h, onStage && onStage.w, lut);
    const box = boxes[current];
    const detecting = views.some((v) => v.kind === "boxes" && v.canvas === current);
    detLayer.replaceChildren();
    boxEl.style.display = box && !detecting ? "" : "none"; // detections replace the ink's box
    if (box) Object.assign(boxEl.style, { top: `${(100 * box[0]) / H}%`, left: `${(100 * box[1]) / W}%`,
      height: `${(100 * (box[2] - box[0])) / H}%`, width: `${(100 * (box[3] - box[1])) / W}%` });
    const boxText = box ? `the ink's box is ${box[2] - box[0]} × ${box[3] - box[1]} px of ${H} × ${W}` : "no ink yet: draw";
    massNote.textContent = chosenMap
      ? (boxes[chosenMap.view.canvas] ? `${chosenMap.view.name}: ${(100 * chosenMap.mass).toFixed(1)} % of the map inside the ink's box (${boxText})` : "draw: no ink yet")
      : boxText;
    // bars (and their values under the canvases)
    views.filter((v) => v.kind === "bars").forEach((v, i) => {
      const values = out[v.output].data;
      barBlocks[i].replaceChildren(mxEl("div", { className: "va-mx-title" }, v.name), barRows(values, v.labels, v.vmax, -1, true));
      if (v.per_canvas) thumbs.forEach((t, s) => { t.value.textContent = `${canvasNames[s]}: ${values[s].toFixed(2)}`; });
      shown.push({ name: v.name, kind: "bars", data: Array.from(values) });
    });
    thumbs.forEach((t, s) => {
      paintInk(t.pic.ink, plane(s), H, W);
      const m = mapped.find((r) => r.view.canvas === s && r === chosenMap);
      paintHeat(t.pic.heat, m && m.data, m && m.h, m && m.w, lut);
    });
    // every map of a maps view over its canvas; slots
    belowViews.forEach((v, i) => {
      const m = out[v.output];
      if (v.kind === "tokens") shown.push(drawTokens(v, i, out));
      else if (v.kind === "boxes") shown.push(drawBoxes(v, i, out));
      else if (v.kind === "lens") shown.push(drawLens(v, i, m));
      else if (v.kind === "maps") {
        const [h, w] = m.shape.slice(-2), count = m.data.length / (h * w), cellW = Math.min(180, Math.max(96, Math.floor(dispW / 2)));
        const cells = [], masses = [];
        for (let k = 0; k < count; k++) {
          const data = m.data.subarray(k * h * w, (k + 1) * h * w);
          const pic = makePicture(cellW, Math.round((cellW * H) / W), alpha);
          paintInk(pic.ink, plane(v.canvas), H, W);
          paintHeat(pic.heat, data, h, w, lut);
          const regions = v.regions.length ? v.regions : [["the ink's box", ...(boxes[v.canvas] || [0, 0, 0, 0])]];
          const mass = regions.map((r) => massInBox(data, h, w, H, W, r.slice(1)));
          masses.push(mass);
          const text = `${v.labels[k] ?? k}: ` + regions.map((r, j) => `${mass[j].toFixed(2)} in ${r[0]}`).join(", ");
          cells.push(mxEl("div", { className: "va-mx-cell" }, pic.node, mxEl("span", {}, text)));
        }
        below[i].replaceChildren(mxEl("div", { className: "va-mx-title", style: "margin-top:10px" }, v.name), mxEl("div", { className: "va-mx-grid" }, ...cells));
        shown.push({ name: v.name, kind: "maps", data: Array.from(m.data), mass: masses });
      } else {
        const w = m.data, K = w.length, order = Array.from(w, (_, k) => k).sort((a, b) => w[b] - w[a]).slice(0, v.top);
        const heat = mxEl("canvas", { className: "va-mx-heat", "aria-label": `${v.name}: weights over the ${K} slots` });
        paintHeat(heat, w, 1, K, lut);
        const [ih, iw] = v.image_size;
        const cells = order.map((k) => {
          const pic = makePicture(40, 40, alpha);
          paintInk(pic.ink, slotImages.subarray(k * ih * iw, (k + 1) * ih * iw), ih, iw);
          paintHeat(pic.heat, null);
          return mxEl("div", { className: "va-mx-cell", style: "align-items:center" }, pic.node, mxEl("span", {}, `${v.labels[k]} · ${w[k].toFixed(2)}`));
        });
        below[i].replaceChildren(mxEl("div", { className: "va-mx-title", style: "margin-top:10px" }, v.name), heat,
          mxEl("div", { className: "va-mx-note" }, `heaviest ${order.length} of ${K} (label · weight)`), mxEl("div", { className: "va-mx-grid" }, ...cells));
        shown.push({ name: v.name, kind: "slots", data: Array.from(w), top: order });
      }
    });
    const firstProbs = probs[Number(probSel.value) || 0];
    const total = performance.now() - t0; // the model and every view drawn
    root.vaState = { input: Array.from(input), shape, canvas: current, boxes, box, ms, total, updatedAt: performance.now(),
      outputs: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }])),
      probs: firstProbs ? firstProbs.p : null, prediction: firstProbs ? firstProbs.best : null,
      mass: chosenMap ? chosenMap.mass : null, views: shown };
  }

  // A transformer's attention (1, L, h, T, T): the reader picks the query token on a small copy of
  // the input (a patch) or with a button (the class token); every layer's every head shows that
  // token's row over the patches, drawn over the input, and the rollout's row beside them.
  function drawTokens(v, i, out) {
    const att = out[v.output], [L, heads, T] = att.shape.slice(1, 4), [gh, gw] = v.grid, pre = v.prefix;
    const q = Math.min(queries[i], T - 1), picked = q >= pre ? [Math.floor((q - pre) / gw), (q - pre) % gw] : null;
    const wide = Math.max(1, W / H), side = Math.min(dispW, 112 * wide), cell = Math.min(Math.max(72, dispW / 2), 72 * wide), ink = plane(v.canvas);
    const picker = makePicture(side, Math.round((side * H) / W), 0.6);
    paintInk(picker.ink, ink, H, W);
    const mark = new Float32Array(gh * gw);
    if (picked) mark[q - pre] = 1;
    paintHeat(picker.heat, picked ? mark : null, gh, gw, lut);
    Object.assign(picker.node, { tabIndex: 0, title: "click a patch to make it the query" });
    picker.node.setAttribute("role", "button");
    picker.node.setAttribute("aria-label", "pick the query patch");
    picker.node.style.cursor = "pointer";
    picker.node.addEventListener("click", (ev) => {
      const r = picker.node.getBoundingClientRect();
      const row = Math.min(gh - 1, Math.floor(((ev.clientY - r.top) / r.height) * gh)), col = Math.min(gw - 1, Math.floor(((ev.clientX - r.left) / r.width) * gw));
      queries[i] = pre + row * gw + col;
      update();
    });
    const cls = mxEl("button", { type: "button", "aria-label": "query: the class token", disabled: pre === 0 }, "class token");
    cls.addEventListener("click", () => { queries[i] = 0; update(); });
    const who = picked ? `patch (row ${picked[0]}, column ${picked[1]})` : "the class token";
    const rowOf = (data, offset) => data.subarray(offset + q * T, offset + (q + 1) * T); // the query's row
    const picture = (row, caption) => {
      const pic = makePicture(cell, Math.round((cell * H) / W), alpha);
      paintInk(pic.ink, ink, H, W);
      paintHeat(pic.heat, row.subarray(pre), gh, gw, lut);
      return mxEl("div", { className: "va-mx-cell", style: `width:${cell + 8}px` }, pic.node, mxEl("span", {}, caption));
    };
    const rows = [], state = [];
    for (let l = 0; l < L; l++) {
      const cells = [];
      for (let h = 0; h < heads; h++) {
        const row = rowOf(att.data, (l * heads + h) * T * T);
        state.push(...row);
        cells.push(picture(row, pre ? `head ${h + 1} · ${pct(row[0])} on cls` : `head ${h + 1}`));
      }
      rows.push(mxEl("div", { className: "va-mx-grid", style: "margin-top:4px;align-items:flex-end" },
        mxEl("span", { className: "va-mx-name", style: "width:56px" }, `layer ${l + 1}`), ...cells));
    }
    let rolled = null;
    if (v.rollout) {
      rolled = rowOf(out[v.rollout].data, 0);
      rows.push(mxEl("div", { className: "va-mx-grid", style: "margin-top:4px;align-items:flex-end" },
        mxEl("span", { className: "va-mx-name", style: "width:56px" }, "rollout"), picture(rolled, pre ? `${pct(rolled[0])} from cls` : "all layers")));
    }
    below[i].replaceChildren(mxEl("div", { className: "va-mx-title", style: "margin-top:10px" }, `${v.name}: where ${who} looks`),
      mxEl("div", { className: "va-mx-main", style: "gap:12px" },
        mxEl("div", { className: "va-mx-left" }, mxEl("span", { className: "va-mx-note" }, "query: click a patch"), picker.node, cls),
        mxEl("div", {}, ...rows)));
    return { name: v.name, kind: "tokens", query: q, data: state, rollout: rolled ? Array.from(rolled) : null };
  }

  // Detections (1, Q, 4) with class probabilities (1, Q, K) and maps (1, Q, h, w): the boxes of
  // those whose most likely class is an object over the stage, and per detection its map, its box
  // and its class (or "no object") with its probability
  function drawBoxes(v, i, out) {
    const b = out[v.output], p = out[v.scores], m = v.attention ? out[v.attention] : null;
    const Q = b.shape[b.shape.length - 2], K = p.shape[p.shape.length - 1], ink = plane(v.canvas);
    const [h, w] = m ? m.shape.slice(-2) : [0, 0];
    const cellW = Math.min(180, Math.max(96, Math.floor(dispW / 2))), cells = [], predictions = [];
    for (let q = 0; q < Q; q++) {
      const box = Array.from(b.data.subarray(4 * q, 4 * q + 4)), probs = p.data.subarray(q * K, (q + 1) * K);
      const best = argmax(probs), none = best === v.none, colour = none ? "#9a9a9a" : DET_COLOURS[q % DET_COLOURS.length];
      const label = `${v.labels[q] ?? q}: ${v.classes[best] ?? best} (${pct(probs[best])})`;
      predictions.push(best);
      if (!none && v.canvas === current) detBox(detLayer, box, colour, `${v.classes[best] ?? best}`, false);
      const pic = makePicture(cellW, Math.round((cellW * H) / W), alpha);
      paintInk(pic.ink, ink, H, W);
      paintHeat(pic.heat, m && m.data.subarray(q * h * w, (q + 1) * h * w), h, w, lut);
      detBox(pic.node, box, colour, "", none);
      cells.push(mxEl("div", { className: "va-mx-cell" }, pic.node, mxEl("span", { style: `border-left:4px solid ${colour};padding-left:4px` }, label)));
    }
    const found = predictions.filter((c) => c !== v.none).map((c) => v.classes[c] ?? c);
    below[i].replaceChildren(mxEl("div", { className: "va-mx-title", style: "margin-top:10px" },
      `${v.name}: ${found.length ? `${found.length} found (${found.join(", ")})` : "nothing found"}`), mxEl("div", { className: "va-mx-grid" }, ...cells));
    return { name: v.name, kind: "boxes", data: [...Array.from(b.data), ...Array.from(p.data), ...(m ? Array.from(m.data) : [])], predictions };
  }

  // Logits after every layer (1, L, K): what the model would say if it stopped there
  function drawLens(v, i, m) {
    const [L, K] = m.shape.slice(-2), per = [];
    for (let l = 0; l < L; l++) per.push(probabilities(m.data.subarray(l * K, (l + 1) * K)));
    const final = argmax(per[L - 1]), bests = per.map(argmax);
    const rows = per.map((p, l) => mxEl("div", { className: `va-mx-row${bests[l] === final ? " va-mx-top" : ""}` },
      mxEl("span", { className: "va-mx-name", style: "width:90px" }, v.layers[l] ?? `layer ${l + 1}`),
      mxEl("span", { className: "va-mx-track" }, mxEl("span", { className: "va-mx-bar", style: `width:${(100 * p[final]).toFixed(1)}%` })),
      mxEl("span", { className: "va-mx-num", "data-value": p[final].toFixed(6) }, p[final].toFixed(3)),
      mxEl("span", {}, `says ${v.classes[bests[l]] ?? bests[l]} (${pct(p[bests[l]])})`)));
    below[i].replaceChildren(mxEl("div", { className: "va-mx-title", style: "margin-top:10px" },
      `${v.name}: probability of the final answer, ${v.classes[final] ?? final}, after each layer`), ...rows);
    return { name: v.name, kind: "lens", data: per.flatMap((p) => Array.from(p)), predictions: bests };
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
    stroke(plane(current), H, W, last[0], last[1], last[0], last[1], brush);
    update();
  });
  stage.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = toInput(ev);
    stroke(plane(current), H, W, last[0], last[1], p[0], p[1], brush);
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
  mapSel.addEventListener("change", update);
  probSel.addEventListener("change", update);
  setExample(0);
  compute();
}

export default { render };
