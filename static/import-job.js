// XML取込 (background): while the job waits or runs, reload its page every few seconds to show the progress, then
// the report. Stops MAX_MINUTES after the job was accepted, so that an open page does not keep the session alive
// for ever (the page says so; reloading it by hand goes on).
(function () {
  "use strict";
  var job = document.getElementById("import-job");
  if (!job || !job.getAttribute("data-pending")) { return; }
  var EVERY = 3000;
  var MAX_MINUTES = 30;
  var accepted = Number(job.getAttribute("data-accepted")) * 1000;
  if (Date.now() - accepted < MAX_MINUTES * 60 * 1000) {
    window.setTimeout(function () { window.location.reload(); }, EVERY);
  }
}());
