// Every ATen operation of model_runtime.js against PyTorch, with no browser (make unit:
// `node --test tests/js/*.test.mjs`). Each fixture case is a small graph in export_model's
// format; the runtime's own loadModel runs it, as the page does, and every output is compared
// with what PyTorch computed (tests/js/make_fixtures.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import * as runtime from "../../src/visual_attention/views/static/model_runtime.js";
import { RUNTIME, check, loadFixtures } from "./check.mjs";

const fixtures = loadFixtures();

describe("every operation computes what PyTorch computes", () => {
  for (const { op, cases } of fixtures) {
    describe(op, () => {
      for (const fixture of cases) {
        test(fixture.name, () => {
          const problems = check(runtime, fixture);
          assert.deepEqual(problems, [], `${op}, ${fixture.name}:\n  ${problems.join("\n  ")}`);
        });
      }
    });
  }
});

test("every fixture's operation is in the runtime's table and runs in its fixtures", () => {
  const source = readFileSync(RUNTIME, "utf8");
  const table = source.slice(source.indexOf("const OPS = {"), source.indexOf("export function"));
  const ops = new Set(fixtures.map((f) => f.op));
  for (const op of ops) assert.match(table, new RegExp(`(^|[\\s,{])${op}(\\s*[:,(])`, "m"), op);
  const used = new Set(
    fixtures.flatMap((f) => f.cases.flatMap((c) => c.graph.nodes.map((n) => n.op))),
  );
  for (const op of ops) assert.ok(used.has(op), `the fixtures of ${op} never run it`);
  assert.ok(ops.size >= 70, `${ops.size} operations`);
});

test("an operation the runtime lacks is refused by name", () => {
  const graph = {
    inputs: ["x"],
    outputs: ["y"],
    names: ["y"],
    constants: {},
    tensors: {},
    nodes: [{ op: "fft_fft", in: ["x"], out: ["y"] }],
  };
  const model = runtime.loadModel(graph, new Float32Array(0).buffer);
  assert.throws(() => model.run(Float32Array.of(1), [1]), /fft_fft is not implemented/);
});

test("the default export is the module's API", () => {
  assert.equal(runtime.default.loadModel, runtime.loadModel);
});
