// 統計情報: the table's first rows as a bar chart (documents and patients), drawn by Chart.js (static/vendor/chartjs).
// The data comes from the page (data-chart); nothing is fetched.
(function () {
  "use strict";
  var canvas = document.getElementById("stats-chart");
  if (!canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(canvas.getAttribute("data-chart"));
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        {label: "書類数", data: data.documents, backgroundColor: "rgba(0, 123, 255, 0.6)"},
        {label: "患者数", data: data.patients, backgroundColor: "rgba(40, 167, 69, 0.6)"}
      ]
    },
    options: {responsive: true, maintainAspectRatio: false, animation: false,
              scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}
  });
}());
