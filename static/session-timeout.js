// Idle timeout (30 minutes by default): warn five minutes before, offer to extend, keep the session alive while the
// user is typing, and say what happens when it has ended (a form posted then is kept for the re-login).
(function () {
  "use strict";
  var box = document.getElementById("session-timeout");
  if (!box) { return; }
  var timeout = parseInt(box.getAttribute("data-timeout"), 10) * 1000;
  var warnBefore = parseInt(box.getAttribute("data-warn"), 10) * 1000;
  var url = box.getAttribute("data-keepalive-url");
  var token = box.getAttribute("data-csrf");
  var slack = 30 * 1000;  // the server notes activity at most every 30 seconds
  var lastContact = Date.now();
  var lastActivity = lastContact;
  var ended = false;
  var banner = null;

  function show(text, extend) {
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "session-timeout-banner";
      banner.className = "alert alert-warning shadow";
      banner.setAttribute("role", "alert");
      banner.style.cssText = "position:fixed;top:0.5rem;left:50%;transform:translateX(-50%);z-index:2000;" +
        "max-width:40rem;width:calc(100% - 2rem)";
      document.body.appendChild(banner);
    }
    banner.textContent = text + " ";
    if (extend) {
      var button = document.createElement("button");
      button.type = "button";
      button.id = "session-extend";
      button.className = "btn btn-sm btn-primary ml-2";
      button.textContent = "ログインを延長";
      button.addEventListener("click", function () { keepAlive(); });
      banner.appendChild(button);
    }
    banner.hidden = false;
  }

  function hide() { if (banner) { banner.hidden = true; } }

  function endedNow() {
    ended = true;
    show("一定時間操作がなかったためログアウトしました。保存ボタンを押すと、ログインし直した後に入力していた内容を" +
         "この画面に戻します（まだ保存されていません）。", false);
  }

  function keepAlive() {
    var body = new URLSearchParams();
    body.append("csrf_token", token);
    return fetch(url, {method: "POST", body: body, credentials: "same-origin", redirect: "manual",
                       headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.status !== 200) { endedNow(); return; }
        lastContact = Date.now();
        hide();
      })
      .catch(function () { /* offline for a moment: the next check tries again */ });
  }

  ["keydown", "input", "change", "click"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (event.target && event.target.id === "session-extend") { return; }
      lastActivity = Date.now();
    }, true);
  });

  function check() {
    if (ended) { return; }
    var now = Date.now();
    var left = timeout - slack - (now - lastContact);
    if (lastActivity > lastContact && now - lastContact > 60 * 1000 && left > 0) {
      keepAlive();  // typing counts as activity: the server does not see it otherwise
      return;
    }
    if (left <= 0) { endedNow(); return; }
    if (left <= warnBefore) {
      show("操作がないため、あと" + Math.max(1, Math.ceil(left / 60000)) + "分でログアウトします。", true);
    }
  }

  setInterval(check, 5000);
})();
