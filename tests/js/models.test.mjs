// Whole exported models in node, as tests/test_model_runtime.py runs them in Chromium: every
// chapter's kind of page model (randomised), two inputs each, every output against PyTorch's to
// 1e-4. make js-unit writes them first (python tests/js/make_fixtures.py --models DIR; DIR is
// JS_MODELS, by default _build/js-models): 2.3 MB of weights, so not committed.
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { loadModel } from "../../src/visual_attention/views/static/model_runtime.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DIR = process.env.JS_MODELS || join(ROOT, "_build", "js-models");
const ATOL = 1e-4;

const floats = (b64) => {
  const bytes = Buffer.from(b64, "base64");
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
};

test("the exported models are there (make js-unit writes them)", () => {
  assert.ok(existsSync(DIR), `${DIR}: run python tests/js/make_fixtures.py --models ${DIR}`);
  assert.ok(readdirSync(DIR).filter((f) => f.endsWith(".json")).length >= 9);
});

const files = existsSync(DIR) ? readdirSync(DIR).filter((f) => f.endsWith(".json")) : [];
for (const file of files.sort()) {
  const body = JSON.parse(readFileSync(join(DIR, file), "utf8"));
  test(body.name, () => {
    const model = loadModel(body.graph, floats(body.weights).buffer);
    body.runs.forEach((run, trial) => {
      const out = model.run(floats(run.input.base64), run.input.shape);
      for (const [name, want] of Object.entries(run.expected)) {
        const got = out[name],
          expected = floats(want.base64);
        assert.deepEqual(got.shape, want.shape, `${name}, input ${trial}: shape`);
        let worst = 0;
        for (let i = 0; i < expected.length; i++)
          worst = Math.max(worst, Math.abs(got.data[i] - expected[i]));
        assert.ok(worst <= ATOL, `${name}, input ${trial}: differs from PyTorch by ${worst}`);
      }
    });
  });
}
