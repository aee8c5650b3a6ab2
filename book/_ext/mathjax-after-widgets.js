// MathJax after the widgets: the page's `mathjax_path` (see _config.yml). Typesetting a chapter's
// formulas takes a few hundred milliseconds of the main thread; the widgets, which a reader can
// use at once, come first. This script (deferred, as Sphinx loads MathJax) waits until the widget
// manager has rendered every widget (embed.js sets data-widgets-rendered on <html>), or for the
// first frame on a page without widgets, then loads MathJax 3 from beside it.
//
// It also maps MathJax 2's API, which the ipywidgets manager uses to typeset widget labels
// (`MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])`), onto MathJax 3's typesetPromise:
// before MathJax is loaded the call does nothing (the first typeset covers the whole page, labels
// too).
(function () {
  var here = document.currentScript && document.currentScript.src;
  var config = (window.MathJax = window.MathJax || {});

  function hub(mj) {
    if (mj.Hub) return;
    mj.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        if (element && mj.typesetPromise) mj.typesetPromise([element]).catch(function () {});
      },
    };
  }

  hub(config);
  var ready = config.startup && config.startup.ready;
  config.startup = Object.assign({}, config.startup, {
    ready: function () {
      if (ready) ready();
      else window.MathJax.startup.defaultReady();
      hub(window.MathJax);
    },
  });

  function load() {
    var script = document.createElement("script");
    script.src = here.replace(/[^/]*$/, "mathjax/tex-mml-chtml.js");
    script.async = true;
    document.head.appendChild(script);
  }

  function whenWidgetsRendered(then) {
    var html = document.documentElement,
      waited = 0;
    var hasWidgets = document.querySelector(
      'script[type="application/vnd.jupyter.widget-state+json"]',
    );
    (function check() {
      if (!hasWidgets || html.dataset.widgetsRendered === "true" || waited > 200) {
        requestAnimationFrame(function () {
          setTimeout(then, 0);
        }); // after the frame that shows them
      } else {
        waited += 1;
        setTimeout(check, 15);
      }
    })();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      whenWidgetsRendered(load);
    });
  } else {
    whenWidgetsRendered(load);
  }
})();
