// The ipywidgets HTML manager typesets widget labels with the MathJax 2 API
// (`MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])`), but the site runs MathJax 3, which has no
// `Hub`: every widget label would throw. Map the call onto MathJax 3's typesetPromise.
(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && mj.version && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var element = job && job[2];
          if (element && mj.typesetPromise) mj.typesetPromise([element]).catch(function () {});
        },
      };
    }
  }
  document.addEventListener("DOMContentLoaded", shim);
  window.addEventListener("load", shim);
})();
