// AttentionExplorer: attention computed in the reader's browser (visual_attention.views.widgets.AttentionExplorer).
//
// The notebook sends, as float32 binary buffers, the queries, keys and values of every token for every
// (layer, head): shape (L, H, N, d) and (L, H, N, dv). On every interaction this module computes, for the
// chosen query token, layer, head, temperature T and (shifted) window,
//
//     a_j = softmax_j( scale · ⟨q, k_j⟩ / T )   over the keys j the query may attend to,
//     c   = Σ_j a_j v_j,
//
// in float64 from the float32 inputs, and draws a_j as a heatmap over the image, with a colour bar, and c
// as labelled bars. visual_attention.views.widgets.reference_attention is the same maths in PyTorch; the browser
// tests compare the two. The result of the latest update is left on the root element as `vaState`.

const CSS = `
.va-aw{font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;color:inherit;max-width:100%}
.va-aw-controls{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;margin-bottom:8px}
.va-aw-controls label{display:flex;gap:6px;align-items:center}
.va-aw-controls output,.va-aw-controls input[type=number]{font-family:monospace;min-width:3em}
.va-aw-main{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.va-aw-stage{position:relative;background-size:100% 100%;cursor:crosshair;outline-offset:2px;touch-action:none;flex:none}
.va-aw-stage:focus-visible{outline:2px solid #39d0ff}
.va-aw-stage canvas{position:absolute;inset:0;width:100%;height:100%;image-rendering:pixelated}
.va-aw-box{position:absolute;box-sizing:border-box;border:2px solid #39d0ff;outline:1px solid #000;pointer-events:none}
.va-aw-side{display:flex;flex-direction:column;gap:10px;min-width:230px}
.va-aw-cbar{display:flex;align-items:center;gap:6px;font-size:12px}
.va-aw-cbar canvas{width:140px;height:12px;image-rendering:pixelated;border:1px solid rgba(127,127,127,.5)}
.va-aw-title{font-weight:600;margin-bottom:2px}
.va-aw-row{display:flex;align-items:center;gap:6px;height:18px;font-size:12px}
.va-aw-name{width:78px;text-align:right;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}
.va-aw-track{position:relative;width:140px;height:12px;background:rgba(127,127,127,.15)}
.va-aw-track:after{content:'';position:absolute;left:50%;top:0;bottom:0;border-left:1px solid #888}
.va-aw-bar{position:absolute;top:1px;bottom:1px}
.va-aw-pos{background:#d9534f}.va-aw-neg{background:#337ab7}.va-aw-fill{background:#5b8c5a}
.va-aw-num{width:60px;font-family:monospace}
.va-aw-caption{font-size:12px;margin-top:4px;max-width:100%}
.va-aw-cost .va-aw-track:after{display:none}
`;

function floats(view) {
  // A DataView (kernel or saved state) or an ArrayBuffer → a Float32Array copy (aligned).
  if (view == null) return new Float32Array(0);
  const buf = view.buffer ? view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) : view;
  return new Float32Array(buf);
}

function bytes(view) {
  if (view == null) return new Uint8Array(0);
  return view.buffer ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength) : new Uint8Array(view);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v;
    else if (k in node && k !== "list") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function fmt(x, digits = 3) {
  return (x >= 0 ? "+" : "") + x.toFixed(digits);
}

// Which keys a grid token may attend to under Swin's (shifted) window attention, as in
// visual_attention.local_attention.shifted_window_mask: the grid is rolled by -s, cut into M×M windows,
// and inside a window only tokens of the same region ([0, H-M), [H-M, H-s), [H-s, H) per axis) meet.
function windowKey(r, c, gh, gw, m, s) {
  const rr = (r - s + gh) % gh, cc = (c - s + gw) % gw;
  const region = (x, n) => (s === 0 ? 0 : x < n - m ? 0 : x < n - s ? 1 : 2);
  return `${Math.floor(rr / m)},${Math.floor(cc / m)},${region(rr, gh)},${region(cc, gw)}`;
}

export function attend(data, state) {
  // The maths (see the header). Returns {weights: Float64Array(N), context: Float64Array(dv), allowed}.
  const [, H, N, d, dv] = data.shape;
  const { layer, head, query, temperature, window: m, shift } = state;
  const base = (layer * H + head) * N;
  const q = data.q.subarray((base + query) * d, (base + query + 1) * d);
  const logits = new Float64Array(N);
  const mask = new Uint8Array(N).fill(1);
  if (m > 0) {
    const [gh, gw] = data.grid;
    const p = data.prefix;
    const own = windowKey(Math.floor((query - p) / gw), (query - p) % gw, gh, gw, m, shift);
    for (let j = 0; j < N; j++) {
      const t = j - p;
      mask[j] = t >= 0 && windowKey(Math.floor(t / gw), t % gw, gh, gw, m, shift) === own ? 1 : 0;
    }
  }
  let top = -Infinity;
  for (let j = 0; j < N; j++) {
    if (!mask[j]) continue;
    const k = data.k.subarray((base + j) * d, (base + j + 1) * d);
    let dot = 0;
    for (let i = 0; i < d; i++) dot += q[i] * k[i];
    logits[j] = (data.scale * dot) / temperature;
    if (logits[j] > top) top = logits[j];
  }
  const weights = new Float64Array(N);
  let total = 0;
  for (let j = 0; j < N; j++) {
    if (!mask[j]) continue;
    weights[j] = Math.exp(logits[j] - top);
    total += weights[j];
  }
  const context = new Float64Array(dv);
  let allowed = 0;
  for (let j = 0; j < N; j++) {
    if (!mask[j]) continue;
    allowed += 1;
    weights[j] /= total;
    const v = data.v.subarray((base + j) * dv, (base + j + 1) * dv);
    for (let c = 0; c < dv; c++) context[c] += weights[j] * v[c];
  }
  return { weights, context, allowed };
}

function render({ model, el: host }) {
  const data = {
    shape: model.get("shape"),
    grid: model.get("grid"),
    prefix: model.get("prefix"),
    scale: model.get("scale"),
    q: floats(model.get("query_buffer")),
    k: floats(model.get("key_buffer")),
    v: floats(model.get("value_buffer")),
  };
  const [L, H, N, , dv] = data.shape;
  const [gh, gw] = data.grid;
  const prefix = data.prefix;
  const shown = new Set(model.get("controls"));
  const lut = bytes(model.get("colormap"));
  const [height, width] = model.get("display_size");
  const valueNames = model.get("value_names");
  const valueMax = model.get("value_max") || 1;
  const label = model.get("label");

  const root = el("div", { className: "va-aw" });
  root.dataset.label = label;
  root.append(el("style", {}, CSS));

  // ---- controls -------------------------------------------------------------------------------
  const controls = el("div", { className: "va-aw-controls" });
  const [tLo, tHi] = model.get("temperature_range");
  const tSlider = el("input", { type: "range", min: Math.log10(tLo), max: Math.log10(tHi), step: 0.01,
                                "aria-label": "temperature", className: "va-aw-temperature" });
  // the slider moves on a log scale; the number box takes any value in the range
  const tNum = el("input", { type: "number", min: tLo, max: tHi, step: "any", "aria-label": "temperature value",
                             className: "va-aw-temperature-value", style: "width:6em" });
  if (shown.has("temperature")) {
    controls.append(el("label", {}, "temperature T", tSlider, tNum));
    tSlider.addEventListener("input", () => {
      model.set("temperature", Number(Math.pow(10, Number(tSlider.value)).toPrecision(4)));
      model.save_changes();
    });
    tNum.addEventListener("input", () => {
      const t = Number(tNum.value);
      if (tNum.value !== "" && Number.isFinite(t) && t >= tLo && t <= tHi) {
        model.set("temperature", t);
        model.save_changes();
      }
    });
  }
  function select(name, labelText, options) {
    const s = el("select", { "aria-label": labelText, className: `va-aw-${name}` });
    options.forEach(([text, value]) => s.append(el("option", { value: String(value) }, text)));
    controls.append(el("label", {}, labelText, s));
    s.addEventListener("change", () => {
      const value = Number(s.value);                  // read before any redraw resets the controls
      if (name === "window") model.set("shift", 0);   // first: a shift must stay below the window
      model.set(name, value);
      model.save_changes();
    });
    return s;
  }
  const names = (list, n, word) => Array.from({ length: n }, (_, i) => [list[i] || `${word} ${i}`, i]);
  const layerSel = shown.has("layer") ? select("layer", model.get("layer_label"), names(model.get("layer_names"), L, "layer")) : null;
  const headSel = shown.has("head") ? select("head", "head", names(model.get("head_names"), H, "head")) : null;
  const windowSel = shown.has("window")
    ? select("window", "window M", [["global", 0], ...model.get("window_sizes").map((m) => [`${m}×${m}`, m])])
    : null;
  const shiftSlider = el("input", { type: "range", min: 0, max: 0, step: 1, "aria-label": "shift", className: "va-aw-shift" });
  const shiftOut = el("output");
  if (shown.has("shift")) {
    controls.append(el("label", {}, "shift s", shiftSlider, shiftOut));
    shiftSlider.addEventListener("input", () => { model.set("shift", Number(shiftSlider.value)); model.save_changes(); });
  }
  const clsButton = prefix > 0 ? el("button", { type: "button", className: "va-aw-cls" }, "query the class token") : null;
  if (clsButton) {
    controls.append(clsButton);
    clsButton.addEventListener("click", () => { model.set("query", 0); model.save_changes(); });
  }

  // ---- image, heatmap, query box ----------------------------------------------------------------
  const stage = el("div", { className: "va-aw-stage", tabIndex: 0, role: "application",
                            "aria-label": "image: click, drag or use the arrow keys to move the query",
                            style: `width:${width}px;height:${height}px` });
  const image = model.get("image");
  if (image) stage.style.backgroundImage = `url(${image})`;
  const heat = el("canvas", { width: gw, height: gh, style: `opacity:${model.get("alpha")}` });
  const box = el("div", { className: "va-aw-box",
                          style: `width:${100 / gw}%;height:${100 / gh}%` });
  stage.append(heat, box);
  const ctx2d = heat.getContext("2d");
  const pixels = ctx2d.createImageData(gw, gh);

  function cellAt(event) {
    const r = stage.getBoundingClientRect();
    const col = Math.min(gw - 1, Math.max(0, Math.floor(((event.clientX - r.left) / r.width) * gw)));
    const row = Math.min(gh - 1, Math.max(0, Math.floor(((event.clientY - r.top) / r.height) * gh)));
    return prefix + row * gw + col;
  }
  function setQuery(t) {
    if (t !== model.get("query")) { model.set("query", t); model.save_changes(); }
  }
  stage.addEventListener("pointerdown", (e) => {
    stage.focus();
    try { stage.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic event has no pointer to capture */ }
    setQuery(cellAt(e));
  });
  stage.addEventListener("pointermove", (e) => { if (e.buttons & 1) setQuery(cellAt(e)); });
  stage.addEventListener("keydown", (e) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (!(e.key in moves)) return;
    e.preventDefault();
    const t = model.get("query") - prefix;
    let row = t < 0 ? 0 : Math.floor(t / gw), col = t < 0 ? 0 : t % gw;
    if (t >= 0) {
      row = Math.min(gh - 1, Math.max(0, row + moves[e.key][0]));
      col = Math.min(gw - 1, Math.max(0, col + moves[e.key][1]));
    }
    setQuery(prefix + row * gw + col);
  });

  // ---- colour bar, context bars, cost ---------------------------------------------------------------
  const side = el("div", { className: "va-aw-side" });
  const cbar = el("canvas", { width: 256, height: 1 });
  const cbarMax = el("span", { className: "va-aw-cbar-max" });
  {
    const c = cbar.getContext("2d");
    const img = c.createImageData(256, 1);
    for (let i = 0; i < 256; i++) img.data.set([lut[3 * i], lut[3 * i + 1], lut[3 * i + 2], 255], 4 * i);
    c.putImageData(img, 0, 0);
  }
  side.append(el("div", {}, el("div", { className: "va-aw-title" }, "attention weight a"),
                 el("div", { className: "va-aw-cbar" }, "0", cbar, cbarMax)));
  function barRows(names, cls) {
    return names.map((name) => {
      const bar = el("span", { className: "va-aw-bar" });
      const num = el("span", { className: "va-aw-num" });
      const row = el("div", { className: `va-aw-row ${cls}` },
                     el("span", { className: "va-aw-name", title: name }, name),
                     el("span", { className: "va-aw-track" }, bar), num);
      return { row, bar, num };
    });
  }
  const ctxTitle = el("div", { className: "va-aw-title" }, model.get("context_title"));
  const ctxRows = barRows(valueNames.length === dv ? valueNames : Array.from({ length: dv }, (_, i) => `c${i}`), "va-aw-ctx");
  side.append(el("div", {}, ctxTitle, ...ctxRows.map((r) => r.row)));
  const showCost = shown.has("window");
  const costTitle = el("div", { className: "va-aw-title" });
  const costRows = barRows(["this attention", "global"], "va-aw-cost");
  if (showCost) side.append(el("div", {}, costTitle, ...costRows.map((r) => r.row)));

  const caption = el("div", { className: "va-aw-caption" });
  const main = el("div", { className: "va-aw-main" }, el("div", { style: `width:${width}px` }, stage, caption), side);
  root.append(controls, main);
  host.append(root);

  // ---- one update: compute, then draw -----------------------------------------------------------
  function update() {
    const start = performance.now();
    const state = {
      layer: model.get("layer"), head: model.get("head"), query: model.get("query"),
      temperature: model.get("temperature"), window: model.get("window"), shift: model.get("shift"),
    };
    const { weights, context, allowed } = attend(data, state);
    let wmax = 0;
    for (let t = 0; t < gh * gw; t++) wmax = Math.max(wmax, weights[prefix + t]);
    for (let t = 0; t < gh * gw; t++) {
      const i = wmax > 0 ? Math.min(255, Math.floor((weights[prefix + t] / wmax) * 255 + 0.5)) : 0;
      pixels.data.set([lut[3 * i], lut[3 * i + 1], lut[3 * i + 2], 255], 4 * t);
    }
    ctx2d.putImageData(pixels, 0, 0);
    cbarMax.textContent = wmax.toFixed(4);
    const t = state.query - prefix;
    box.style.display = t >= 0 ? "" : "none";
    if (t >= 0) {
      box.style.left = `${(100 * (t % gw)) / gw}%`;
      box.style.top = `${(100 * Math.floor(t / gw)) / gh}%`;
    }
    ctxRows.forEach(({ bar, num }, c) => {
      const x = context[c], frac = Math.min(50, (50 * Math.abs(x)) / valueMax);
      bar.className = `va-aw-bar ${x >= 0 ? "va-aw-pos" : "va-aw-neg"}`;
      bar.style.left = `${x >= 0 ? 50 : 50 - frac}%`;
      bar.style.width = `${frac}%`;
      bar.dataset.value = String(x);
      num.textContent = fmt(x);
    });
    // controls follow the model (changes may come from Python too)
    if (shown.has("temperature")) {
      tSlider.value = Math.log10(state.temperature);
      if (document.activeElement !== tNum) tNum.value = String(Number(state.temperature.toPrecision(4)));
    }
    if (layerSel) layerSel.value = String(state.layer);
    if (headSel) headSel.value = String(state.head);
    if (windowSel) windowSel.value = String(state.window);
    shiftSlider.max = Math.max(0, state.window - 1);
    shiftSlider.disabled = state.window === 0;
    shiftSlider.value = String(state.shift);
    shiftOut.value = String(state.shift);
    const where = t >= 0 ? `query cell (${Math.floor(t / gw)}, ${t % gw})` : "query: class token";
    const parts = [where];
    if (shown.has("layer")) parts.push(`${model.get("layer_label")} ${layerSel.selectedOptions[0]?.text ?? state.layer}`);
    if (shown.has("head")) parts.push(`head ${state.head}`);
    parts.push(`T = ${state.temperature.toPrecision(3)}`, `attends to ${allowed} of ${N} tokens`);
    if (prefix > 0) parts.push(`weight on class token ${weights[0].toFixed(3)}`);
    caption.textContent = parts.join(" · ");
    if (showCost) {
      const mine = state.window > 0 ? gh * gw * state.window * state.window : N * N;
      const all = N * N;
      costTitle.textContent = `attention weights per head: ${mine.toLocaleString("en")} (${((100 * mine) / all).toFixed(1)}% of global)`;
      [[mine, costRows[0]], [all, costRows[1]]].forEach(([n, { bar, num }]) => {
        bar.className = "va-aw-bar va-aw-fill";
        bar.style.left = "0";
        bar.style.width = `${(100 * n) / all}%`;
        bar.dataset.value = String(n);
        num.textContent = n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
      });
    }
    root.vaState = { ...state, label, weights: Array.from(weights), context: Array.from(context),
                     allowed, computeMs: performance.now() - start, updatedAt: performance.now() };
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }
  const names2 = ["query", "layer", "head", "temperature", "window", "shift"];
  names2.forEach((n) => model.on(`change:${n}`, update));
  update();
  return () => names2.forEach((n) => model.off(`change:${n}`, update));
}

export default { render };
