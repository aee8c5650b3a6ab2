// Build the site's widget manager (entry.js) into one script + one stylesheet with esbuild.
// usage: node book/_ext/embed/build.mjs OUT_DIR      (run from the repository root after `npm ci`)
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || "_build/embed";

const plugin = {
  name: "attention-in-vision",
  setup(b) {
    // anywidget's front end ships as an AMD module (define(["@jupyter-widgets/base"], factory));
    // hand its factory over as an ES module instead of going through require.js.
    b.onResolve({ filter: /^\.\/anywidget-amd\.js$/ }, () => ({
      path: "anywidget-amd",
      namespace: "va",
    }));
    b.onLoad({ filter: /.*/, namespace: "va" }, () => {
      const src = readFileSync(join("node_modules", "anywidget", "dist", "index.js"), "utf8");
      return {
        contents:
          "let factory; const define = (deps, f) => { factory = f; };\n" +
          `${src}\nexport default factory;`,
        loader: "js",
        resolveDir: here,
      };
    });
    // The Output widget (and the JupyterLab output area, rendermime and services it pulls in, a
    // third of the bundle) is not used by this book: the manager gets an empty registry instead.
    b.onResolve({ filter: /^\.\/output$/ }, (a) =>
      a.importer.includes("html-manager") ? { path: "output", namespace: "stub" } : undefined,
    );
    b.onResolve({ filter: /^@jupyterlab\/rendermime$/ }, () => ({
      path: "rendermime",
      namespace: "stub",
    }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, (a) => ({
      contents:
        a.path === "output"
          ? "export {};"
          : "export class RenderMimeRegistry { addFactory() {} }\n" +
            "export const standardRendererFactories = [];",
      loader: "js",
    }));
    // ipywidgets 7 models are not used by this book: leave their copies out of the bundle.
    b.onResolve({ filter: /^@jupyter-widgets\/(base7|controls7)(\/.*)?$/ }, (a) => ({
      path: a.path,
      namespace: "legacy",
    }));
    b.onLoad({ filter: /.*/, namespace: "legacy" }, (a) => ({
      contents: a.path.endsWith(".css")
        ? ""
        : `throw new Error("ipywidgets 7 widgets are not supported here");`,
      loader: a.path.endsWith(".css") ? "css" : "js",
    }));
  },
};

await build({
  entryPoints: { embed: join(here, "entry.js") },
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  outdir: out,
  loader: {
    ".woff": "file",
    ".woff2": "file",
    ".ttf": "file",
    ".eot": "file",
    ".svg": "file",
    ".png": "file",
  },
  assetNames: "[name]-[hash]",
  define: { "process.env.NODE_ENV": '"production"', global: "window" },
  plugins: [plugin],
  legalComments: "none",
  logLevel: "warning",
});
console.log(`widget manager built in ${out}`);
