// Flask-Admin's templates put a few handlers in inline onclick attributes, which our Content-Security-Policy
// (scripts by nonce only, no 'unsafe-inline') refuses to run. Rebind the known ones as event listeners; an
// unknown inline handler stays inert rather than being evaluated.
(function () {
  "use strict";
  function text(quoted) { return quoted.replace(/\\'/g, "'").replace(/\\\\/g, "\\"); }
  var handlers = [
    [/^return faHelpers\.safeConfirm\('((?:[^'\\]|\\.)*)'\);?$/, function (m, el, ev) {
      if (!window.confirm(text(m[1]))) { ev.preventDefault(); }
    }],
    [/^return confirm\('((?:[^'\\]|\\.)*)'\);?$/, function (m, el, ev) {
      if (!window.confirm(text(m[1]))) { ev.preventDefault(); }
    }],
    [/^return modelActions\.execute\('([^']*)'\);?$/, function (m, el, ev) {
      ev.preventDefault();
      window.modelActions.execute(m[1]);
    }],
    [/^faForm\.addInlineField\(this, '([^']*)'\);?$/, function (m, el, ev) {
      ev.preventDefault();
      window.faForm.addInlineField(el, m[1]);
    }],
    [/^return false;?$/, function (m, el, ev) { ev.preventDefault(); }]
  ];
  function rebind(root) {
    root.querySelectorAll("[onclick]").forEach(function (el) {
      var code = el.getAttribute("onclick").trim();
      for (var i = 0; i < handlers.length; i++) {
        var m = code.match(handlers[i][0]);
        if (m) {
          var handler = handlers[i][1];
          el.removeAttribute("onclick");
          el.addEventListener("click", function (ev) { handler(m, el, ev); });
          return;
        }
      }
    });
  }
  // Our own buttons ask first with data-confirm="..." (the text is escaped by the template, never evaluated).
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-confirm]") : null;
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
  }, true);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { rebind(document); });
  } else {
    rebind(document);
  }
})();
