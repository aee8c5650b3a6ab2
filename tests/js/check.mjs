// What the runtime's unit tests share: the fixtures PyTorch wrote (tests/js/make_fixtures.py) and
// the comparison of a runtime's outputs with them. Used by ops.test.mjs (the runtime as it is) and
// mutation.test.mjs (copies of it with one operation perturbed).
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
export const RUNTIME = fileURLToPath(
  new URL("../../src/visual_attention/views/static/model_runtime.js", import.meta.url),
);
// |got − want| ≤ RTOL·|want| + ATOL: float32 results of float64 arithmetic on both sides; ATOL
// only for values near zero (and the erf fit of gelu, whose error is below 1.2e-7)
export const RTOL = 1e-5;
export const ATOL = 1e-6;

const special = { nan: NaN, inf: Infinity, "-inf": -Infinity };
const decode = (v) => (typeof v === "string" ? special[v] : v);

/** Every fixture file: {op, cases: [{name, graph, weights, expected}]}, by operation. */
export function loadFixtures() {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(FIXTURES + f, "utf8")));
}

/** The outputs of one case's graph, run by `runtime.loadModel` as a page runs a model. */
export function runCase(runtime, fixture) {
  const weights = Float32Array.from(fixture.weights.map(decode));
  const model = runtime.loadModel(fixture.graph, weights.buffer);
  return model.run(new Float32Array(0), [0]);
}

function close(got, want) {
  if (Number.isNaN(want)) return Number.isNaN(got);
  if (!Number.isFinite(want)) return got === want;
  return Math.abs(got - want) <= RTOL * Math.abs(want) + ATOL;
}

/** Where `got` differs from the encoded PyTorch value `want`: messages, none if it does not. */
export function differences(got, want, where = "out") {
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length)
      return [`${where}: expected a list of ${want.length}, got ${describe(got)}`];
    return want.flatMap((w, i) => differences(got[i], w, `${where}[${i}]`));
  }
  if (want !== null && typeof want === "object") {
    if (!got || !(got.data instanceof Float32Array))
      return [`${where}: expected a tensor, got ${describe(got)}`];
    if (JSON.stringify(got.shape) !== JSON.stringify(want.shape))
      return [
        `${where}: shape ${JSON.stringify(got.shape)}, PyTorch ${JSON.stringify(want.shape)}`,
      ];
    if (got.data.length !== want.data.length)
      return [`${where}: ${got.data.length} values for shape ${JSON.stringify(want.shape)}`];
    const bad = [];
    want.data.forEach((w, i) => {
      if (!close(got.data[i], decode(w))) bad.push(i);
    });
    if (!bad.length) return [];
    const i = bad[0];
    return [
      `${where}: ${bad.length} of ${want.data.length} values differ, first [${i}]: ` +
        `${got.data[i]} vs PyTorch ${decode(want.data[i])}`,
    ];
  }
  const w = decode(want);
  if (typeof got !== "number" && typeof got !== "boolean")
    return [`${where}: expected ${w}, got ${describe(got)}`];
  return close(Number(got), w) ? [] : [`${where}: ${got} vs PyTorch ${w}`];
}

function describe(x) {
  if (x && x.data instanceof Float32Array) return `a tensor of shape ${JSON.stringify(x.shape)}`;
  return JSON.stringify(x) ?? String(x);
}

/** Every difference of one case (outputs by name); an error thrown by the runtime is one too. */
export function check(runtime, fixture) {
  let out;
  try {
    out = runCase(runtime, fixture);
  } catch (error) {
    return [`the runtime threw: ${error.message}`];
  }
  return Object.entries(fixture.expected).flatMap(([name, want]) =>
    differences(out[name], want, name),
  );
}
