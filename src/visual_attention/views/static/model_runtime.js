// model_runtime.js: runs, in the reader's browser, a graph exported from PyTorch by
// visual_attention.views.browser_model.export_model (one JSON graph, one float32 weight buffer).
//
// Each node is an ATen operation as PyTorch ran it when the model was traced; this file gives each
// operation the same meaning on contiguous float32 tensors {shape, data}. Nothing here knows about
// any chapter's model: the model is defined once, in PyTorch, and exported.
//
//   const model = loadModel(graph, weightsArrayBuffer);
//   const {logits, weights} = model.run(Float32Array.from(pixels), [1, 1, 48, 48]);

const numel = (shape) => shape.reduce((a, b) => a * b, 1);
const tensor = (shape, data) => ({
  shape: shape.slice(),
  data: data || new Float32Array(numel(shape)),
});
const isTensor = (x) => x && typeof x === "object" && x.data instanceof Float32Array;
const norm = (d, n) => (d < 0 ? d + n : d);
const stridesOf = (shape) => {
  const s = new Array(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
};
const asTensor = (x) => (isTensor(x) ? x : tensor([], Float32Array.of(Number(x))));

function broadcastShape(a, b) {
  const n = Math.max(a.length, b.length),
    out = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1,
      y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`shapes ${a} and ${b} do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

// strides of `shape` seen from `out` (0 along broadcast dimensions)
function viewStrides(shape, out) {
  const s = stridesOf(shape),
    r = new Array(out.length).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const j = out.length - shape.length + i;
    r[j] = shape[i] === 1 ? 0 : s[i];
  }
  return r;
}

function elementwise(a, b, f) {
  a = asTensor(a);
  b = asTensor(b);
  const shape = broadcastShape(a.shape, b.shape),
    out = tensor(shape);
  const n = out.data.length,
    A = a.data,
    B = b.data,
    O = out.data;
  if (a.data.length === n && b.data.length === n) {
    for (let i = 0; i < n; i++) O[i] = f(A[i], B[i]);
    return out;
  }
  if (b.data.length === 1) {
    const y = B[0];
    if (A.length === n) {
      for (let i = 0; i < n; i++) O[i] = f(A[i], y);
      return out;
    }
  }
  const sa = viewStrides(a.shape, shape),
    sb = viewStrides(b.shape, shape),
    idx = new Array(shape.length).fill(0);
  let ia = 0,
    ib = 0;
  for (let i = 0; i < n; i++) {
    O[i] = f(A[ia], B[ib]);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      ia += sa[d];
      ib += sb[d];
      if (idx[d] < shape[d]) break;
      ia -= sa[d] * shape[d];
      ib -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

const unary = (x, f) => {
  const o = tensor(x.shape);
  for (let i = 0; i < x.data.length; i++) o.data[i] = f(x.data[i]);
  return o;
};

// a permuted copy: out dimension i is input dimension perm[i]
function permute(x, perm) {
  const shape = perm.map((p) => x.shape[p]),
    s = stridesOf(x.shape),
    ps = perm.map((p) => s[p]);
  const out = tensor(shape),
    n = out.data.length,
    idx = new Array(shape.length).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out.data[i] = x.data[src];
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      src += ps[d];
      if (idx[d] < shape[d]) break;
      src -= ps[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

function reshape(x, shape) {
  shape = shape.slice();
  const known = shape.filter((s) => s !== -1).reduce((a, b) => a * b, 1),
    i = shape.indexOf(-1);
  if (i >= 0) shape[i] = known ? x.data.length / known : 0;
  if (numel(shape) !== x.data.length) throw new Error(`cannot reshape ${x.shape} to ${shape}`);
  return { shape, data: x.data };
}

// reduce over `dims` (sorted, normalised) with keepdim
function reduce(x, dims, keepdim, init, f, finish) {
  const nd = x.shape.length,
    dimsSet = new Set(dims.map((d) => norm(d, nd)));
  const outShape = x.shape.map((s, i) => (dimsSet.has(i) ? 1 : s));
  const out = tensor(outShape).data.fill(init),
    os = viewStrides(outShape, x.shape);
  for (let d = 0; d < nd; d++) if (dimsSet.has(d)) os[d] = 0;
  const idx = new Array(nd).fill(0);
  let o = 0;
  for (let i = 0; i < x.data.length; i++) {
    out[o] = f(out[o], x.data[i]);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      o += os[d];
      if (idx[d] < x.shape[d]) break;
      o -= os[d] * x.shape[d];
      idx[d] = 0;
    }
  }
  const count = [...dimsSet].reduce((a, d) => a * x.shape[d], 1);
  if (finish) for (let i = 0; i < out.length; i++) out[i] = finish(out[i], count);
  const shape = keepdim ? outShape : x.shape.filter((_, i) => !dimsSet.has(i));
  return { shape, data: out };
}

function softmax(x, dim, log) {
  const nd = x.shape.length;
  dim = norm(dim, nd);
  const perm = [...Array(nd).keys()].filter((d) => d !== dim).concat([dim]);
  const inv = perm.map((_, i) => perm.indexOf(i));
  const moved = dim === nd - 1 ? x : permute(x, perm),
    n = x.shape[dim],
    rows = moved.data.length / (n || 1);
  const out = tensor(moved.shape);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, moved.data[r * n + j]);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(moved.data[r * n + j] - m);
    for (let j = 0; j < n; j++) {
      const z = moved.data[r * n + j] - m;
      out.data[r * n + j] = log ? z - Math.log(s) : Math.exp(z) / s;
    }
  }
  return dim === nd - 1 ? out : permute(out, inv);
}

function matmul(a, b) {
  if (a.shape.length === 1)
    return reshape(
      matmul(reshape(a, [1, a.shape[0]]), b),
      b.shape.length === 1 ? [] : [...b.shape.slice(0, -2), b.shape[b.shape.length - 1]],
    );
  if (b.shape.length === 1) {
    const r = matmul(a, reshape(b, [b.shape[0], 1]));
    return reshape(r, r.shape.slice(0, -1));
  }
  const [m, k] = a.shape.slice(-2),
    [k2, n] = b.shape.slice(-2);
  if (k !== k2) throw new Error(`matmul ${a.shape} @ ${b.shape}`);
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)),
    nb = numel(batch);
  const out = tensor([...batch, m, n]);
  const sa = viewStrides(a.shape.slice(0, -2), batch),
    sb = viewStrides(b.shape.slice(0, -2), batch);
  const idx = new Array(batch.length).fill(0);
  for (let t = 0; t < nb; t++) {
    let oa = 0,
      ob = 0;
    for (let d = 0; d < batch.length; d++) {
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
    oa *= m * k;
    ob *= k * n;
    const O = out.data,
      base = t * m * n;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const av = a.data[oa + i * k + p],
          row = ob + p * n,
          o = base + i * n;
        if (av === 0) continue;
        for (let j = 0; j < n; j++) O[o + j] += av * b.data[row + j];
      }
    }
    for (let d = batch.length - 1; d >= 0; d--) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// 3 × 3, stride 1, dilation 1, direct: on a zero-padded copy of each input channel (no bounds
// checks in the inner loop), four output channels at a time (each input value loaded once for four
// accumulators). Used for grouped and single-channel convolutions; see conv3x3 for the rest.
function conv3x3Direct(x, w, bias, pad, groups) {
  const [B, C, H, W] = x.shape,
    O = w.shape[0],
    Cg = w.shape[1],
    Og = O / groups;
  const OH = H + 2 * pad - 2,
    OW = W + 2 * pad - 2,
    PW = W + 2 * pad,
    PH = H + 2 * pad;
  const out = tensor([B, O, OH, OW]),
    Y = out.data,
    Wt = w.data,
    P = new Float32Array(PH * PW);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < O; o++)
      if (bias) Y.fill(bias.data[o], (b * O + o) * OH * OW, (b * O + o + 1) * OH * OW);
    for (let g = 0; g < groups; g++) {
      for (let c = 0; c < Cg; c++) {
        const xc = (b * C + g * Cg + c) * H * W;
        for (let i = 0; i < H; i++)
          P.set(x.data.subarray(xc + i * W, xc + (i + 1) * W), (i + pad) * PW + pad);
        for (let o0 = g * Og; o0 < (g + 1) * Og; o0 += 4) {
          const n = Math.min(4, (g + 1) * Og - o0),
            k = [0, 1, 2, 3].map((j) => (j < n ? ((o0 + j) * Cg + c) * 9 : -1));
          const wv = (j, t) => (k[j] < 0 ? 0 : Wt[k[j] + t]);
          const a0 = wv(0, 0),
            a1 = wv(0, 1),
            a2 = wv(0, 2),
            a3 = wv(0, 3),
            a4 = wv(0, 4),
            a5 = wv(0, 5),
            a6 = wv(0, 6),
            a7 = wv(0, 7),
            a8 = wv(0, 8);
          const b0 = wv(1, 0),
            b1 = wv(1, 1),
            b2 = wv(1, 2),
            b3 = wv(1, 3),
            b4 = wv(1, 4),
            b5 = wv(1, 5),
            b6 = wv(1, 6),
            b7 = wv(1, 7),
            b8 = wv(1, 8);
          const c0 = wv(2, 0),
            c1 = wv(2, 1),
            c2 = wv(2, 2),
            c3 = wv(2, 3),
            c4 = wv(2, 4),
            c5 = wv(2, 5),
            c6 = wv(2, 6),
            c7 = wv(2, 7),
            c8 = wv(2, 8);
          const d0 = wv(3, 0),
            d1 = wv(3, 1),
            d2 = wv(3, 2),
            d3 = wv(3, 3),
            d4 = wv(3, 4),
            d5 = wv(3, 5),
            d6 = wv(3, 6),
            d7 = wv(3, 7),
            d8 = wv(3, 8);
          const y0 = (b * O + o0) * OH * OW,
            step = OH * OW;
          for (let oh = 0; oh < OH; oh++) {
            const r0 = oh * PW,
              r1 = r0 + PW,
              r2 = r1 + PW,
              yr = y0 + oh * OW;
            for (let ow = 0; ow < OW; ow++) {
              const p0 = P[r0 + ow],
                p1 = P[r0 + ow + 1],
                p2 = P[r0 + ow + 2];
              const p3 = P[r1 + ow],
                p4 = P[r1 + ow + 1],
                p5 = P[r1 + ow + 2];
              const p6 = P[r2 + ow],
                p7 = P[r2 + ow + 1],
                p8 = P[r2 + ow + 2];
              Y[yr + ow] +=
                a0 * p0 +
                a1 * p1 +
                a2 * p2 +
                a3 * p3 +
                a4 * p4 +
                a5 * p5 +
                a6 * p6 +
                a7 * p7 +
                a8 * p8;
              if (n > 1)
                Y[yr + step + ow] +=
                  b0 * p0 +
                  b1 * p1 +
                  b2 * p2 +
                  b3 * p3 +
                  b4 * p4 +
                  b5 * p5 +
                  b6 * p6 +
                  b7 * p7 +
                  b8 * p8;
              if (n > 2)
                Y[yr + 2 * step + ow] +=
                  c0 * p0 +
                  c1 * p1 +
                  c2 * p2 +
                  c3 * p3 +
                  c4 * p4 +
                  c5 * p5 +
                  c6 * p6 +
                  c7 * p7 +
                  c8 * p8;
              if (n > 3)
                Y[yr + 3 * step + ow] +=
                  d0 * p0 +
                  d1 * p1 +
                  d2 * p2 +
                  d3 * p3 +
                  d4 * p4 +
                  d5 * p5 +
                  d6 * p6 +
                  d7 * p7 +
                  d8 * p8;
            }
          }
        }
      }
    }
  }
  return out;
}

// Scratch buffers reused across calls: they never leave this file (every returned tensor gets
// fresh memory), so a later node can hold on to any output safely.
const scratch = {};
const buffer = (name, n) => {
  if (!scratch[name] || scratch[name].length < n) scratch[name] = new Float64Array(n);
  return scratch[name];
};
const tmp = new Float64Array(16); // one tile's half-transformed values

// Winograd F(2×2, 3×3) weights U = G g Gᵀ, as [16][O4 / 4][C][4] (O4: O rounded up to 4, zero
// rows; the 4 output channels of one c side by side for the product below), computed once per
// weight tensor (tensors are never written after they are made).
const winogradWeights = new WeakMap();
function transformWeights(w) {
  const cached = winogradWeights.get(w.data);
  if (cached) return cached;
  const [O, C] = w.shape,
    O4 = Math.ceil(O / 4) * 4,
    U = new Float64Array(16 * O4 * C),
    g = w.data,
    t = new Array(12);
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < C; c++) {
      const k = (o * C + c) * 9;
      for (let j = 0; j < 3; j++) {
        // G g: rows 0..3 of column j
        const g0 = g[k + j],
          g1 = g[k + 3 + j],
          g2 = g[k + 6 + j];
        t[j] = g0;
        t[3 + j] = 0.5 * (g0 + g1 + g2);
        t[6 + j] = 0.5 * (g0 - g1 + g2);
        t[9 + j] = g2;
      }
      for (let i = 0; i < 4; i++) {
        // (G g) Gᵀ: columns 0..3 of row i
        const g0 = t[3 * i],
          g1 = t[3 * i + 1],
          g2 = t[3 * i + 2],
          u = [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2];
        for (let j = 0; j < 4; j++)
          U[(4 * i + j) * O4 * C + (o >> 2) * 4 * C + 4 * c + (o & 3)] = u[j];
      }
    }
  }
  winogradWeights.set(w.data, U);
  return U;
}

// 3 × 3, stride 1, dilation 1: the encoders' convolution, the one loop that decides the speed of a
// CNN here. Winograd F(2×2, 3×3) (Lavin & Gray 2016): each 4 × 4 input tile d becomes V = Bᵀ d B,
// each 2 × 2 output tile is Aᵀ (Σ_c U ⊙ V) A: 16 multiplications per tile and channel pair instead
// of 36. The sum over c is 16 small matrix products M[ξ] = U[ξ] V[ξ], computed 4 output channels ×
// 2 tiles at a time with the 8 sums in registers. All arithmetic in float64.
function conv3x3(x, w, bias, pad, groups) {
  const [B, C, H, W] = x.shape,
    O = w.shape[0];
  if (groups !== 1 || C < 4) return conv3x3Direct(x, w, bias, pad, groups);
  const OH = H + 2 * pad - 2,
    OW = W + 2 * pad - 2,
    TH = Math.ceil(OH / 2),
    TW = Math.ceil(OW / 2);
  const T = TH * TW,
    T2 = T + (T % 2),
    O4 = Math.ceil(O / 4) * 4,
    PW = 2 * TW + 2,
    PH = 2 * TH + 2;
  const U = transformWeights(w),
    out = tensor([B, O, OH, OW]),
    Y = out.data,
    X = x.data;
  const P = buffer("pad", PH * PW),
    V = buffer("V", 16 * T2 * C),
    M = buffer("M", 16 * O4 * T2);
  P.fill(0); // the border stays zero; the inside is rewritten for each channel
  for (let b = 0; b < B; b++) {
    // V[ξ][t][c] = (Bᵀ d B)[ξ] for tile t of channel c (a zero tile pads T to even)
    for (let c = 0; c < C; c++) {
      const xc = (b * C + c) * H * W;
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) P[(i + pad) * PW + j + pad] = X[xc + i * W + j];
      for (let ti = 0; ti < TH; ti++)
        for (let tj = 0; tj < TW; tj++) {
          const r = 2 * ti * PW + 2 * tj,
            v = (ti * TW + tj) * C + c,
            step = T2 * C;
          for (let j = 0; j < 4; j++) {
            // Bᵀ d, column j, kept in the pad rows' place
            const d0 = P[r + j],
              d1 = P[r + PW + j],
              d2 = P[r + 2 * PW + j],
              d3 = P[r + 3 * PW + j];
            tmp[j] = d0 - d2;
            tmp[4 + j] = d1 + d2;
            tmp[8 + j] = d2 - d1;
            tmp[12 + j] = d1 - d3;
          }
          for (let i = 0; i < 4; i++) {
            // (Bᵀ d) B, row i
            const e0 = tmp[4 * i],
              e1 = tmp[4 * i + 1],
              e2 = tmp[4 * i + 2],
              e3 = tmp[4 * i + 3],
              k = v + 4 * i * step;
            V[k] = e0 - e2;
            V[k + step] = e1 + e2;
            V[k + 2 * step] = e2 - e1;
            V[k + 3 * step] = e1 - e3;
          }
        }
      if (T2 > T) for (let xi = 0; xi < 16; xi++) V[(xi * T2 + T) * C + c] = 0;
    }
    // M[ξ][o][t] = Σ_c U[ξ][o][c] V[ξ][t][c]
    for (let xi = 0; xi < 16; xi++) {
      const u0 = xi * O4 * C,
        v0 = xi * T2 * C,
        m0 = xi * O4 * T2;
      for (let t = 0; t < T2; t += 2) {
        const va = v0 + t * C,
          vb = va + C;
        for (let o = 0; o < O4; o += 4) {
          let s0 = 0,
            s1 = 0,
            s2 = 0,
            s3 = 0,
            s4 = 0,
            s5 = 0,
            s6 = 0,
            s7 = 0;
          for (let c = 0, u = u0 + o * C; c < C; c++, u += 4) {
            const p = V[va + c],
              q = V[vb + c],
              a = U[u],
              bb = U[u + 1],
              cc = U[u + 2],
              d = U[u + 3];
            s0 += a * p;
            s1 += bb * p;
            s2 += cc * p;
            s3 += d * p;
            s4 += a * q;
            s5 += bb * q;
            s6 += cc * q;
            s7 += d * q;
          }
          const m = m0 + o * T2 + t;
          M[m] = s0;
          M[m + T2] = s1;
          M[m + 2 * T2] = s2;
          M[m + 3 * T2] = s3;
          M[m + 1] = s4;
          M[m + T2 + 1] = s5;
          M[m + 2 * T2 + 1] = s6;
          M[m + 3 * T2 + 1] = s7;
        }
      }
    }
    // output tile = Aᵀ M A + bias, cut at the border
    const step = O4 * T2;
    for (let o = 0; o < O; o++) {
      const bo = bias ? bias.data[o] : 0,
        yo = (b * O + o) * OH * OW;
      for (let ti = 0; ti < TH; ti++)
        for (let tj = 0; tj < TW; tj++) {
          const k = o * T2 + ti * TW + tj;
          for (let j = 0; j < 4; j++) {
            // Aᵀ M, column j
            const m0 = M[k + (4 * 0 + j) * step],
              m1 = M[k + (4 + j) * step],
              m2 = M[k + (8 + j) * step],
              m3 = M[k + (12 + j) * step];
            tmp[j] = m0 + m1 + m2;
            tmp[4 + j] = m1 - m2 - m3;
          }
          const oh = 2 * ti,
            ow = 2 * tj,
            y = yo + oh * OW + ow;
          Y[y] = tmp[0] + tmp[1] + tmp[2] + bo;
          if (ow + 1 < OW) Y[y + 1] = tmp[1] - tmp[2] - tmp[3] + bo;
          if (oh + 1 < OH) {
            Y[y + OW] = tmp[4] + tmp[5] + tmp[6] + bo;
            if (ow + 1 < OW) Y[y + OW + 1] = tmp[5] - tmp[6] - tmp[7] + bo;
          }
        }
    }
  }
  return out;
}

function conv2d(x, w, bias, stride, padding, dilation, groups) {
  const [B, C, H, W] = x.shape,
    [O, Cg, KH, KW] = w.shape;
  const plain = stride[0] === 1 && stride[1] === 1 && dilation[0] === 1 && dilation[1] === 1;
  if (plain && KH === 3 && KW === 3 && padding[0] === padding[1] && padding[0] <= 1)
    return conv3x3(x, w, bias, padding[0], groups);
  const [sh, sw] = stride,
    [ph, pw] = padding,
    [dh, dw] = dilation;
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1,
    OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const out = tensor([B, O, OH, OW]),
    Og = O / groups,
    X = x.data,
    Wt = w.data,
    Y = out.data;
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og),
        yo = (b * O + o) * OH * OW;
      if (bias) Y.fill(bias.data[o], yo, yo + OH * OW);
      for (let c = 0; c < Cg; c++) {
        const xc = (b * C + g * Cg + c) * H * W;
        for (let kh = 0; kh < KH; kh++) {
          for (let kw = 0; kw < KW; kw++) {
            const wv = Wt[((o * Cg + c) * KH + kh) * KW + kw];
            if (wv === 0) continue;
            // output columns whose input column ow·sw + kw·dw − pw lies inside [0, W)
            const lo = Math.max(0, Math.ceil((pw - kw * dw) / sw)),
              hi = Math.min(OW, Math.floor((W - 1 + pw - kw * dw) / sw) + 1);
            for (let oh = 0; oh < OH; oh++) {
              const ih = oh * sh + kh * dh - ph;
              if (ih < 0 || ih >= H) continue;
              const xr = xc + ih * W - pw + kw * dw,
                yr = yo + oh * OW;
              if (sw === 1) for (let ow = lo; ow < hi; ow++) Y[yr + ow] += wv * X[xr + ow];
              else for (let ow = lo; ow < hi; ow++) Y[yr + ow] += wv * X[xr + ow * sw];
            }
          }
        }
      }
    }
  }
  return out;
}

function pool2d(x, k, s, p, max, countPad) {
  const [B, C, H, W] = x.shape,
    [KH, KW] = k,
    [SH, SW] = s.length ? s : k,
    [PH, PW] = p;
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1,
    OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  const out = tensor([B, C, OH, OW]);
  if (max && KH === 2 && KW === 2 && SH === 2 && SW === 2 && PH === 0 && PW === 0) {
    // the encoders' pool
    const X = x.data,
      Y = out.data;
    for (let bc = 0, y = 0; bc < B * C; bc++)
      for (let oh = 0; oh < OH; oh++) {
        const r = (bc * H + 2 * oh) * W;
        for (let ow = 0; ow < OW; ow++, y++) {
          const i = r + 2 * ow;
          Y[y] = Math.max(Math.max(X[i], X[i + 1]), Math.max(X[i + W], X[i + W + 1]));
        }
      }
    return out;
  }
  for (let bc = 0; bc < B * C; bc++) {
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let acc = max ? -Infinity : 0,
          cnt = 0;
        for (let i = 0; i < KH; i++)
          for (let j = 0; j < KW; j++) {
            const ih = oh * SH - PH + i,
              iw = ow * SW - PW + j;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              if (countPad) cnt++;
              continue;
            }
            const v = x.data[(bc * H + ih) * W + iw];
            acc = max ? Math.max(acc, v) : acc + v;
            cnt++;
          }
        out.data[(bc * OH + oh) * OW + ow] = max ? acc : acc / cnt;
      }
  }
  return out;
}

function einsum(equation, operands) {
  let [lhs, rhs] = equation.replace(/\s/g, "").split("->");
  let terms = lhs.split(",");
  if (equation.includes("...")) {
    // "..." becomes capital letters, aligned from the right
    const spare = "ZYXWVUTSRQPONMLKJIHGFEDCBA",
      ranks = terms.map((t, i) => operands[i].shape.length - (t.length - 3));
    const most = Math.max(0, ...terms.map((t, i) => (t.includes("...") ? ranks[i] : 0)));
    const fill = (k) =>
      spare
        .slice(0, most)
        .split("")
        .reverse()
        .slice(most - k)
        .join("");
    terms = terms.map((t, i) => t.replace("...", fill(t.includes("...") ? ranks[i] : 0)));
    if (rhs !== undefined) rhs = rhs.replace("...", fill(most));
    lhs = terms.join(",");
  }
  const size = {};
  terms.forEach((t, i) =>
    [...t].forEach((c, d) => {
      // a size-1 dimension broadcasts (to any size, 0 included)
      const n = operands[i].shape[d];
      if (size[c] === undefined || size[c] === 1) size[c] = n;
    }),
  );
  const outLetters = [
    ...(rhs ??
      [...new Set(lhs.replace(/,/g, ""))]
        .filter((c) => lhs.split(c).length === 2)
        .sort()
        .join("")),
  ];
  const sumLetters = Object.keys(size).filter((c) => !outLetters.includes(c));
  const letters = [...outLetters, ...sumLetters],
    dims = letters.map((c) => size[c]);
  const strides = operands.map((op, i) => {
    const s = stridesOf(op.shape);
    return letters.map((c) => {
      let r = 0;
      [...terms[i]].forEach((t, d) => {
        if (t === c && op.shape[d] !== 1) r += s[d];
      });
      return r;
    });
  });
  const out = tensor(outLetters.map((c) => size[c])),
    total = numel(dims),
    inner = numel(sumLetters.map((c) => size[c]));
  const idx = new Array(letters.length).fill(0),
    offs = operands.map(() => 0);
  for (let i = 0; i < total; i++) {
    let prod = 1;
    for (let o = 0; o < operands.length; o++) prod *= operands[o].data[offs[o]];
    out.data[Math.floor(i / inner)] += prod;
    for (let d = letters.length - 1; d >= 0; d--) {
      idx[d]++;
      for (let o = 0; o < operands.length; o++) offs[o] += strides[o][d];
      if (idx[d] < dims[d]) break;
      for (let o = 0; o < operands.length; o++) offs[o] -= strides[o][d] * dims[d];
      idx[d] = 0;
    }
  }
  return out;
}

function expand(x, size) {
  const shape = size.map((s, i) => (s === -1 ? x.shape[i - (size.length - x.shape.length)] : s));
  return elementwise(x, tensor(shape, new Float32Array(numel(shape))), (a) => a);
}

function slice(x, dim, start, end, step) {
  const nd = x.shape.length;
  dim = norm(dim, nd);
  const n = x.shape[dim];
  start = start == null ? 0 : Math.min(Math.max(norm(start, n), 0), n);
  end = end == null ? n : Math.min(Math.max(end < 0 ? end + n : end, 0), n);
  const keep = [];
  for (let i = start; i < end; i += step || 1) keep.push(i);
  const outer = numel(x.shape.slice(0, dim)),
    inner = numel(x.shape.slice(dim + 1));
  const out = tensor(x.shape.map((s, i) => (i === dim ? keep.length : s)));
  for (let o = 0; o < outer; o++)
    keep.forEach((k, j) =>
      out.data.set(
        x.data.subarray((o * n + k) * inner, (o * n + k + 1) * inner),
        (o * keep.length + j) * inner,
      ),
    );
  return out;
}

function cat(list, dim) {
  const nd = list[0].shape.length;
  dim = norm(dim, nd);
  const outer = numel(list[0].shape.slice(0, dim)),
    inner = numel(list[0].shape.slice(dim + 1));
  const total = list.reduce((a, t) => a + t.shape[dim], 0),
    out = tensor(list[0].shape.map((s, i) => (i === dim ? total : s)));
  let off = 0;
  for (const t of list) {
    const n = t.shape[dim];
    for (let o = 0; o < outer; o++)
      out.data.set(t.data.subarray(o * n * inner, (o + 1) * n * inner), (o * total + off) * inner);
    off += n;
  }
  return out;
}

const dimsOf = (dims, nd) =>
  dims == null || (Array.isArray(dims) && dims.length === 0)
    ? [...Array(nd).keys()]
    : Array.isArray(dims)
      ? dims
      : [dims];
const erf = (x) => {
  // Numerical Recipes erfc (Chebyshev fit, error below 1.2e-7)
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y =
    1 -
    t *
      Math.exp(
        -x * x -
          1.26551223 +
          t *
            (1.00002368 +
              t *
                (0.37409196 +
                  t *
                    (0.09678418 +
                      t *
                        (-0.18628806 +
                          t *
                            (0.27886807 +
                              t *
                                (-1.13520398 +
                                  t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
      );
  return x >= 0 ? y : -y;
};

// max(v, 0) without a branch on the sign (random signs defeat the branch predictor; -inf, whose
// v + |v| is NaN, is the one predictable test); keeps NaN, as PyTorch
function reluInPlace(x) {
  const X = x.data;
  for (let i = 0; i < X.length; i++) {
    const v = X[i];
    X[i] = v === -Infinity ? 0 : (v + Math.abs(v)) * 0.5;
  }
  return x;
}

const OPS = {
  _convolution: (x, w, b, stride, padding, dilation, transposed, _op, groups) => {
    if (transposed) throw new Error("transposed convolution is not supported");
    return conv2d(x, w, b, stride, padding, dilation, groups);
  },
  relu: (x) => reluInPlace(tensor(x.shape, Float32Array.from(x.data))),
  sigmoid: (x) => unary(x, (v) => 1 / (1 + Math.exp(-v))),
  tanh: (x) => unary(x, Math.tanh),
  exp: (x) => unary(x, Math.exp),
  sqrt: (x) => unary(x, Math.sqrt),
  abs: (x) => unary(x, Math.abs),
  neg: (x) => unary(x, (v) => -v),
  gelu: (x, approximate) =>
    unary(
      x,
      approximate === "tanh"
        ? (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)))
        : (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
    ),
  clamp_min: (x, m) => unary(x, (v) => Math.max(v, m)),
  pow: (x, e) => (isTensor(e) ? elementwise(x, e, Math.pow) : unary(x, (v) => Math.pow(v, e))),
  max_pool2d: (x, k, s, p) => pool2d(x, k, s, p, true, false),
  avg_pool2d: (x, k, s, p, _ceil, countPad = true) => pool2d(x, k, s, p, false, countPad),
  adaptive_avg_pool2d: (x, size) => {
    const [H, W] = x.shape.slice(-2);
    if (size[0] !== 1 || size[1] !== 1) {
      if (H % size[0] || W % size[1]) throw new Error("adaptive pooling needs an even split");
      return pool2d(x, [H / size[0], W / size[1]], [], [0, 0], false, true);
    }
    return reduce(
      x,
      [-2, -1].map((d) => norm(d, 4)),
      true,
      0,
      (a, v) => a + v,
      (a, n) => a / n,
    );
  },
  size: (x, dim) => (dim == null ? x.shape.slice() : x.shape[norm(dim, x.shape.length)]),
  ListConstruct: (...xs) => xs,
  TupleConstruct: (...xs) => xs,
  ListUnpack: (xs) => xs,
  TupleUnpack: (xs) => xs,
  movedim: (x, src, dst) => {
    const nd = x.shape.length,
      s = (Array.isArray(src) ? src : [src]).map((d) => norm(d, nd)),
      t = (Array.isArray(dst) ? dst : [dst]).map((d) => norm(d, nd));
    const perm = new Array(nd).fill(-1);
    s.forEach((d, i) => {
      perm[t[i]] = d;
    });
    const rest = [...Array(nd).keys()].filter((d) => !s.includes(d));
    for (let i = 0, r = 0; i < nd; i++) if (perm[i] < 0) perm[i] = rest[r++];
    return permute(x, perm);
  },
  Int: (x) => Math.trunc(isTensor(x) ? x.data[0] : x),
  ScalarImplicit: (x) => (isTensor(x) ? x.data[0] : x),
  NumToTensor: (x) => tensor([], Float32Array.of(x)),
  expand: (x, size) => expand(x, size),
  einsum: (eq, ops) => einsum(eq, ops),
  mul: (a, b) => (isTensor(a) || isTensor(b) ? elementwise(a, b, (x, y) => x * y) : a * b),
  mul_: (a, b) => elementwise(a, b, (x, y) => x * y),
  div: (a, b) => (isTensor(a) || isTensor(b) ? elementwise(a, b, (x, y) => x / y) : a / b),
  floor_divide: (a, b) =>
    isTensor(a) || isTensor(b)
      ? elementwise(a, b, (x, y) => Math.floor(x / y))
      : Math.floor(a / b),
  add: (a, b, alpha = 1) =>
    isTensor(a) || isTensor(b) ? elementwise(a, b, (x, y) => x + alpha * y) : a + alpha * b,
  add_: (a, b, alpha = 1) => elementwise(a, b, (x, y) => x + alpha * y),
  sub: (a, b, alpha = 1) =>
    isTensor(a) || isTensor(b) ? elementwise(a, b, (x, y) => x - alpha * y) : a - alpha * b,
  rsub: (a, b, alpha = 1) => elementwise(a, b, (x, y) => y - alpha * x),
  masked_fill: (x, mask, value) =>
    elementwise(
      elementwise(x, mask, (v, m) => (m ? NaN : v)),
      asTensor(value),
      (v, f) => (Number.isNaN(v) ? f : v),
    ),
  flatten: (x, start = 0, end = -1) => {
    const nd = x.shape.length;
    if (nd === 0) return reshape(x, [1]);
    start = norm(start, nd);
    end = norm(end, nd);
    return reshape(x, [
      ...x.shape.slice(0, start),
      numel(x.shape.slice(start, end + 1)),
      ...x.shape.slice(end + 1),
    ]);
  },
  reshape: (x, shape) => reshape(x, shape),
  view: (x, shape) => reshape(x, shape),
  softmax: (x, dim) => softmax(x, dim, false),
  log_softmax: (x, dim) => softmax(x, dim, true),
  linear: (x, w, b) => {
    // y = x wᵀ + b: dot products of contiguous rows, four input rows per weight row
    const [N, K] = w.shape,
      rows = x.data.length / K,
      out = tensor([...x.shape.slice(0, -1), N]);
    const X = x.data,
      Wt = w.data,
      Y = out.data;
    for (let n = 0; n < N; n++) {
      const wr = n * K,
        bias = b ? b.data[n] : 0;
      let r = 0;
      for (; r + 4 <= rows; r += 4) {
        let s0 = bias,
          s1 = bias,
          s2 = bias,
          s3 = bias;
        const x0 = r * K,
          x1 = x0 + K,
          x2 = x1 + K,
          x3 = x2 + K;
        for (let k = 0; k < K; k++) {
          const v = Wt[wr + k];
          s0 += X[x0 + k] * v;
          s1 += X[x1 + k] * v;
          s2 += X[x2 + k] * v;
          s3 += X[x3 + k] * v;
        }
        Y[r * N + n] = s0;
        Y[(r + 1) * N + n] = s1;
        Y[(r + 2) * N + n] = s2;
        Y[(r + 3) * N + n] = s3;
      }
      for (; r < rows; r++) {
        let s = bias;
        for (let k = 0, xr = r * K; k < K; k++) s += X[xr + k] * Wt[wr + k];
        Y[r * N + n] = s;
      }
    }
    return out;
  },
  matmul,
  bmm: matmul,
  mm: matmul,
  t: (x) => (x.shape.length < 2 ? x : permute(x, [1, 0])),
  addmm: (c, a, b, beta = 1, alpha = 1) =>
    elementwise(matmul(a, b), c, (u, v) => alpha * u + beta * v),
  mean: (x, dims, keepdim = false) =>
    reduce(
      x,
      dimsOf(dims, x.shape.length),
      keepdim,
      0,
      (a, v) => a + v,
      (a, n) => a / n,
    ),
  sum: (x, dims, keepdim = false) =>
    dims === undefined || dims === null || typeof dims === "string"
      ? reduce(x, dimsOf(null, x.shape.length), false, 0, (a, v) => a + v)
      : reduce(x, dimsOf(dims, x.shape.length), keepdim, 0, (a, v) => a + v),
  amax: (x, dims, keepdim = false) =>
    reduce(x, dimsOf(dims, x.shape.length), keepdim, -Infinity, Math.max),
  // ‖x‖_p over dims (p = 2 by default; 1 and ∞ too), as torch.linalg.vector_norm
  linalg_vector_norm: (x, ord = 2, dims = null, keepdim = false) => {
    const d = dimsOf(dims, x.shape.length);
    if (ord === Infinity) return reduce(x, d, keepdim, 0, (a, v) => Math.max(a, Math.abs(v)));
    if (ord === 1) return reduce(x, d, keepdim, 0, (a, v) => a + Math.abs(v));
    return reduce(
      x,
      d,
      keepdim,
      0,
      (a, v) => a + Math.abs(v) ** ord,
      (a) => a ** (1 / ord),
    );
  },
  expand_as: (x, other) => expand(x, other.shape),
  bitwise_not: (x) => unary(x, (v) => (v === 0 ? 1 : 0)), // masks: booleans stored as 0 and 1
  logical_not: (x) => unary(x, (v) => (v === 0 ? 1 : 0)), // NaN is true, as in PyTorch
  broadcast_tensors: (xs) => {
    const shape = xs.reduce((s, x) => broadcastShape(s, x.shape), []);
    return xs.map((x) => expand(x, shape));
  },
  amin: (x, dims, keepdim = false) =>
    reduce(x, dimsOf(dims, x.shape.length), keepdim, Infinity, Math.min),
  transpose: (x, a, b) => {
    const p = [...x.shape.keys()];
    a = norm(a, p.length);
    b = norm(b, p.length);
    [p[a], p[b]] = [p[b], p[a]];
    return permute(x, p);
  },
  permute: (x, dims) =>
    permute(
      x,
      dims.map((d) => norm(d, x.shape.length)),
    ),
  unsqueeze: (x, d) => {
    d = norm(d, x.shape.length + 1);
    const s = x.shape.slice();
    s.splice(d, 0, 1);
    return reshape(x, s);
  },
  squeeze: (x, d) =>
    d == null
      ? reshape(
          x,
          x.shape.filter((s) => s !== 1),
        )
      : x.shape[norm(d, x.shape.length)] === 1
        ? reshape(
            x,
            x.shape.filter((_, i) => i !== norm(d, x.shape.length)),
          )
        : x,
  cat: (list, dim = 0) => cat(list, dim),
  stack: (list, dim = 0) => {
    const nd = list[0].shape.length + 1;
    dim = norm(dim, nd);
    return cat(
      list.map((t) => {
        const s = t.shape.slice();
        s.splice(dim, 0, 1);
        return reshape(t, s);
      }),
      dim,
    );
  },
  roll: (x, shifts, dims = []) => {
    // as torch.roll: element i moves to i + shift (mod the size), per dimension
    shifts = [].concat(shifts);
    dims = [].concat(dims);
    if (!dims.length) return reshape(OPS.roll(reshape(x, [x.data.length]), shifts, [0]), x.shape);
    const nd = x.shape.length,
      st = stridesOf(x.shape),
      out = tensor(x.shape),
      idx = new Array(nd).fill(0);
    const by = new Array(nd).fill(0);
    dims.forEach((d, k) => {
      d = norm(d, nd);
      by[d] = ((shifts[k] % x.shape[d]) + x.shape[d]) % x.shape[d];
    });
    for (let i = 0; i < x.data.length; i++) {
      let o = 0;
      for (let d = 0; d < nd; d++) o += ((idx[d] + by[d]) % x.shape[d]) * st[d];
      out.data[o] = x.data[i];
      for (let d = nd - 1; d >= 0; d--) {
        if (++idx[d] < x.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  },
  repeat: (x, repeats) => {
    // as torch.Tensor.repeat: tile x, its shape padded with leading ones
    const shape = [...new Array(repeats.length - x.shape.length).fill(1), ...x.shape],
      out = tensor(shape.map((s, i) => s * repeats[i]));
    const nd = shape.length,
      st = stridesOf(shape),
      idx = new Array(nd).fill(0);
    for (let o = 0; o < out.data.length; o++) {
      let i = 0;
      for (let d = 0; d < nd; d++) i += (idx[d] % shape[d]) * st[d];
      out.data[o] = x.data[i];
      for (let d = nd - 1; d >= 0; d--) {
        if (++idx[d] < out.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  },
  unflatten: (x, dim, sizes) => {
    // one dimension into several (one size may be −1)
    dim = norm(dim, x.shape.length);
    const known = sizes.reduce((a, s) => (s === -1 ? a : a * s), 1),
      whole = sizes.map((s) => (s === -1 ? x.shape[dim] / known : s));
    return reshape(x, [...x.shape.slice(0, dim), ...whole, ...x.shape.slice(dim + 1)]);
  },
  chunk: (x, chunks, dim = 0) => {
    // as torch.chunk: pieces of ceil(size / chunks), the last may be smaller
    dim = norm(dim, x.shape.length);
    const step = Math.ceil(x.shape[dim] / chunks),
      out = [];
    for (let start = 0; start < x.shape[dim]; start += step)
      out.push(slice(x, dim, start, Math.min(start + step, x.shape[dim]), 1));
    return out;
  },
  unbind: (x, dim = 0) => {
    dim = norm(dim, x.shape.length);
    return [...Array(x.shape[dim]).keys()].map((i) => OPS.select(x, dim, i));
  },
  select: (x, dim, i) => {
    const nd = x.shape.length;
    dim = norm(dim, nd);
    const r = slice(x, dim, norm(i, x.shape[dim]), norm(i, x.shape[dim]) + 1, 1);
    return reshape(
      r,
      r.shape.filter((_, j) => j !== dim),
    );
  },
  slice: (x, dim, start, end, step) => slice(x, dim, start, end, step),
  layer_norm: (x, shape, w, b, eps) => {
    const n = numel(shape),
      rows = x.data.length / n,
      out = tensor(x.shape);
    for (let r = 0; r < rows; r++) {
      let m = 0,
        v = 0;
      for (let j = 0; j < n; j++) m += x.data[r * n + j];
      m /= n;
      for (let j = 0; j < n; j++) {
        const d = x.data[r * n + j] - m;
        v += d * d;
      }
      const inv = 1 / Math.sqrt(v / n + eps);
      for (let j = 0; j < n; j++)
        out.data[r * n + j] =
          (x.data[r * n + j] - m) * inv * (w ? w.data[j] : 1) + (b ? b.data[j] : 0);
    }
    return out;
  },
  eye: (n, m = n) => {
    const t = tensor([n, m]);
    for (let i = 0; i < Math.min(n, m); i++) t.data[i * m + i] = 1;
    return t;
  },
  ones_like: (x) => tensor(x.shape, new Float32Array(x.data.length).fill(1)),
  zeros_like: (x) => tensor(x.shape),
  contiguous: (x) => x,
  detach: (x) => x,
  clone: (x) => x,
  to: (x) => x,
  dropout: (x) => x,
};

export function loadModel(graph, weights) {
  const floats =
    weights instanceof Float32Array
      ? weights
      : new Float32Array(
          weights instanceof ArrayBuffer
            ? weights
            : weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
        );
  const params = {};
  for (const [id, t] of Object.entries(graph.tensors))
    params[id] = { shape: t.shape, data: floats.subarray(t.offset, t.offset + numel(t.shape)) };
  // A convolution whose output only a following relu reads (or an in-place relu_ rebinds) is
  // computed with the ReLU applied to its fresh output: one pass and one tensor fewer.
  const uses = {};
  for (const node of graph.nodes) for (const i of node.in) uses[i] = (uses[i] || 0) + 1;
  for (const o of graph.outputs) uses[o] = (uses[o] || 0) + 1;
  const fused = new Set();
  graph.nodes.forEach((node, k) => {
    const next = graph.nodes[k + 1];
    if (
      node.op === "_convolution" &&
      next &&
      (next.op === "relu" || next.op === "relu_") &&
      next.in[0] === node.out[0] &&
      (next.op === "relu_" || uses[node.out[0]] === 1)
    )
      fused.add(k + 1);
  });
  // JSON has no infinities: the export writes them as {"float": "-inf"}
  const number = (v) =>
    v && typeof v === "object" && !Array.isArray(v) && "float" in v
      ? Number(v.float.replace("inf", "Infinity"))
      : Array.isArray(v)
        ? v.map(number)
        : v;
  const constants = Object.fromEntries(
    Object.entries(graph.constants).map(([k, v]) => [k, number(v)]),
  );
  return {
    graph,
    run(input, shape) {
      const env = Object.assign({}, constants, params);
      env[graph.inputs[0]] = tensor(
        shape,
        input instanceof Float32Array ? input : Float32Array.from(input),
      );
      for (const [k, node] of graph.nodes.entries()) {
        if (fused.has(k)) {
          // the relu after a convolution, in place on the convolution's own output
          const r = reluInPlace(env[node.in[0]]);
          env[node.out[0]] = r;
          continue;
        }
        // an in-place operation (relu_, mul_ …) computes the same values and rebinds its input,
        // so that later nodes reading the input see them (the table names a few, e.g. add_)
        const inplace = node.op.endsWith("_");
        const f = OPS[node.op] || (inplace ? OPS[node.op.slice(0, -1)] : undefined);
        if (!f) throw new Error(`operation ${node.op} is not implemented`);
        const args = node.in.map((i) => env[i]);
        // eye(n) and eye(n, m) differ only by their number of positional arguments
        const result =
          node.op === "eye"
            ? f(...args.slice(0, node.in.length - (node.kw || []).length))
            : f(...args);
        if (inplace) env[node.in[0]] = result;
        if (node.out.length === 1) env[node.out[0]] = result;
        else
          node.out.forEach((o, i) => {
            env[o] = result[i];
          });
      }
      const out = {};
      graph.names.forEach((name, i) => {
        out[name] = env[graph.outputs[i]];
      });
      return out;
    },
  };
}

export default { loadModel };
