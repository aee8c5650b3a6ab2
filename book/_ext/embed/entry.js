// The ipywidgets manager the static site serves itself: the built-in widgets (ipywidgets 8) plus
// anywidget's front end, so that the book's own widgets (visual_attention.widgets) run with no
// kernel. Not included (see build.mjs): ipywidgets 7 models and the Output widget, which the book
// does not use. Built by build.mjs with esbuild from the npm registry's packages (see
// package.json); never committed.
import * as base from "@jupyter-widgets/base";
import { HTMLManager } from "@jupyter-widgets/html-manager/lib/htmlmanager";
import "@lumino/widgets/style/index.css";
import anywidgetFactory from "./anywidget-amd.js";

const anywidget = anywidgetFactory(base);

async function loader(moduleName) {
  if (moduleName === "anywidget") return anywidget;
  throw new Error(`widget module ${moduleName} is not served by this site`);
}

// The stylesheet esbuild writes beside this script (widgets' layout, lumino), loaded once.
const here = document.currentScript && document.currentScript.src;
if (here) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = here.replace(/\.js(\?.*)?$/, ".css");
  document.head.appendChild(link);
}

// As @jupyter-widgets/html-manager's libembed: every widget-state script sets up a manager, and
// every widget-view script whose model it knows is replaced by the rendered view.
async function renderWidgets(element = document.documentElement) {
  const states = element.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-state+json"]',
  );
  await Promise.all(
    Array.from(states).map(async (tag) => {
      const manager = new HTMLManager({ loader });
      const models = await manager.set_state(JSON.parse(tag.innerHTML));
      const views = element.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]',
      );
      await Promise.all(
        Array.from(views).map(async (viewTag) => {
          const { model_id } = JSON.parse(viewTag.innerHTML);
          const model = models.find((m) => m.model_id === model_id);
          if (model === undefined || viewTag.parentElement === null) return;
          const host = document.createElement("div");
          host.className = "widget-subarea";
          viewTag.parentElement.insertBefore(host, viewTag);
          const view = await manager.create_view(model);
          manager.display_view(view, host);
        }),
      );
    }),
  );
  document.documentElement.dataset.widgetsRendered = "true";
}

// As soon as the page is parsed (the widgets need no images, fonts or MathJax, which come later).
if (!window._jupyter_widget_embedder) {
  window._jupyter_widget_embedder = true;
  if (document.readyState === "loading")
    document.addEventListener("DOMContentLoaded", () => {
      renderWidgets();
    });
  else renderWidgets();
}
