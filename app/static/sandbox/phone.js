// The customer phone: the conversation with the shop's number, refreshed every 1.5 s; a typed text goes to the
// sandbox's endpoint, which delivers it to Orderline as Twilio would and returns the bot's answer.
(function () {
  "use strict";
  var root = document.getElementById("phone");
  var thread = document.getElementById("ph-thread");
  var live = document.getElementById("ph-live");
  var number = document.getElementById("ph-number");
  var form = document.getElementById("ph-compose");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var shown = "";

  function refresh() {
    var url = root.dataset.threadUrl + "?phone=" + encodeURIComponent(number.value);
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        live.textContent = "live";
        if (data.fingerprint === shown) return;
        thread.innerHTML = data.html;
        shown = data.fingerprint;
        thread.scrollTop = thread.scrollHeight;
      })
      .catch(function () { live.textContent = "reconnecting…"; });
  }

  function loop() { refresh().then(function () { setTimeout(loop, 1500); }); }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = form.elements.body;
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    input.disabled = true;
    fetch(root.dataset.sendUrl, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({phone: number.value, body: text})})
      .then(function (r) { return r.json(); })
      .then(function (data) { if (data.error) live.textContent = data.error.message; })
      .finally(function () { input.disabled = false; input.focus(); shown = ""; refresh(); });
  });
  number.addEventListener("change", function () { shown = ""; refresh(); });
  loop();
})();
