// The unit tests can fail: copies of model_runtime.js with one operation perturbed (a sign, a
// stride, a bound, an edge case's fix undone) must each fail some fixture of that operation,
// and the unperturbed copy, written and imported the same way, must pass them all.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";

import { RUNTIME, check, loadFixtures } from "./check.mjs";

// [operation whose fixtures must catch it, text of the runtime, what it becomes]
const MUTANTS = [
  ["sigmoid", "(v) => 1 / (1 + Math.exp(-v))", "(v) => 1 / (1 + Math.exp(-v * 1.001))"],
  // without the row's maximum, large logits overflow: only the edge case catches it
  ["softmax", "m = Math.max(m, moved.data[r * n + j])", "m = 0"],
  ["_convolution", "tmp[j] = m0 + m1 + m2;", "tmp[j] = m0 + m1 - m2;"],
  ["add", "r[j] = shape[i] === 1 ? 0 : s[i];", "r[j] = s[i];"],
  ["add_", "if (inplace) env[node.in[0]] = result;", ""],
  ["layer_norm", "Math.sqrt(v / n + eps)", "Math.sqrt(v / (n - 1) + eps)"],
  ["einsum", "if (size[c] === undefined || size[c] === 1) size[c] = n;", "size[c] = n || 1;"],
  ["relu", "v === -Infinity ? 0 : ", ""],
  // fusing a relu into a convolution whose output another node reads
  ["relu", '(next.op === "relu_" || uses[node.out[0]] === 1)', "true"],
  ["linear", "s3 += X[x3 + k] * v;", "s3 += X[x2 + k] * v;"],
  ["bmm", "oa *= m * k;", "oa *= m * n;"],
  ["roll", "% x.shape[d]) + x.shape[d]) % x.shape[d];", "% x.shape[d]) + 1) % x.shape[d];"],
  ["_convolution", "Y[yr + ow] += wv * X[xr + ow * sw];", "Y[yr + ow] += wv * X[xr + ow];"],
  ["avg_pool2d", "acc = max ? Math.max(acc, v) : acc + v;", "acc = max ? Math.max(acc, v) : v;"],
  ["slice", "Math.max(end < 0 ? end + n : end, 0)", "Math.max(end, 0)"],
];

const source = readFileSync(RUNTIME, "utf8");
const fixtures = new Map(loadFixtures().map((f) => [f.op, f.cases]));
const dir = mkdtempSync(join(tmpdir(), "runtime-mutants-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function load(text, name) {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, text);
  return import(pathToFileURL(path).href);
}

const failing = (runtime, cases) => cases.filter((c) => check(runtime, c).length > 0);

test("the unperturbed copy passes every fixture", async () => {
  const runtime = await load(source, "original");
  const all = [...fixtures.values()].flat();
  assert.deepEqual(
    failing(runtime, all).map((c) => c.name),
    [],
  );
});

describe("a runtime with one operation perturbed fails that operation's fixtures", () => {
  MUTANTS.forEach(([op, find, replace], i) => {
    test(`${op}: ${find} -> ${replace || "(removed)"}`, async () => {
      assert.equal(source.split(find).length, 2, `the runtime no longer reads ${find}`);
      const runtime = await load(source.replace(find, replace), `mutant${i}`);
      const cases = fixtures.get(op);
      assert.ok(cases, `no fixtures for ${op}`);
      assert.ok(failing(runtime, cases).length > 0, `the fixtures of ${op} do not see ${find}`);
    });
  });
});
