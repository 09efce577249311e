// 出力ファイル: while a job is waiting or being written, ask the server for the jobs' state every few seconds and
// update the page (status, rows written, the download link when done). Stops when no job is pending, and after
// MAX_MINUTES so that an open page does not keep the session alive for ever.
(function () {
  "use strict";
  var table = document.getElementById("export-jobs");
  if (!table || !table.getAttribute("data-pending")) { return; }
  var url = table.getAttribute("data-status-url");
  var EVERY = 2000;
  var MAX_MINUTES = 30;
  var started = Date.now();

  function update(row, job) {
    row.className = "job-" + job.status;
    var status = row.querySelector(".job-status");
    status.textContent = job.status_label;
    if (job.status === "failed" && job.error) {
      var error = document.createElement("div");
      error.className = "small text-danger job-error";
      error.textContent = job.error;
      status.appendChild(error);
    }
    row.querySelector(".job-rows").textContent = job.rows;
    var cell = row.querySelector(".job-download");
    if (job.download_url && !cell.querySelector("a")) {
      var link = document.createElement("a");
      link.className = "btn btn-sm btn-primary";
      link.href = job.download_url;
      link.textContent = "ダウンロード";
      cell.appendChild(link);
    }
  }

  function poll() {
    fetch(url, {credentials: "same-origin", redirect: "manual", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.status !== 200) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var pending = false;
        data.jobs.forEach(function (job) {
          var row = table.querySelector('tr[data-job="' + job.id + '"]');
          if (row) { update(row, job); }
          if (job.status === "waiting" || job.status === "running") { pending = true; }
        });
        next(pending);
      })
      .catch(function () { next(true); });
  }

  function next(pending) {
    if (!pending) { return; }
    if (Date.now() - started > MAX_MINUTES * 60 * 1000) {
      var note = document.getElementById("export-jobs-note");
      note.textContent = "自動更新を停止しました。状態を確かめるには、このページを再読み込みしてください。";
      note.hidden = false;
      return;
    }
    setTimeout(poll, EVERY);
  }

  next(true);
})();
