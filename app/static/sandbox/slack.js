// The Slack sandbox: the channel, refreshed every 1.5 s; a button or a modal's submit goes to the sandbox's
// own endpoint, which signs it as Slack would and posts it to Orderline's /slack/events.
(function () {
  "use strict";
  var root = document.getElementById("slack");
  var list = document.getElementById("sk-messages");
  var live = document.getElementById("sk-live");
  var status = document.getElementById("sk-status");
  var overlay = document.getElementById("sk-overlay");
  var box = document.getElementById("sk-modal-box");
  var userSelect = document.getElementById("sk-user");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var channel = root.querySelector(".sk-channel.active").dataset.channel;
  var shown = "";
  var stickToBottom = true;

  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf}})
      .then(function (r) { return r.json().then(function (data) { data.httpStatus = r.status; return data; }); });
  }

  function say(text, bad) { status.textContent = text; status.className = "sk-status" + (bad ? " bad" : ""); }

  function refresh() {
    var url = root.dataset.channelUrl + "?channel=" + encodeURIComponent(channel) + "&user=" +
      encodeURIComponent(userSelect.value);
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        live.textContent = "live";
        if (data.fingerprint === shown) return;
        stickToBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
        list.innerHTML = data.html;
        shown = data.fingerprint;
        if (stickToBottom) list.scrollTop = list.scrollHeight;
      })
      .catch(function () { live.textContent = "reconnecting…"; });
  }

  function loop() { refresh().then(function () { setTimeout(loop, 1500); }); }

  function openModal(modal) {
    box.innerHTML = modal.html;
    overlay.hidden = false;
    var form = box.querySelector("form.sk-modal");
    var first = form.querySelector("textarea, input, select");
    if (first) first.focus();
  }

  function closeModal() { overlay.hidden = true; box.innerHTML = ""; }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button.sk-btn");
    if (!button || button.disabled) return;
    var body = button.closest(".sk-body");
    if (button.dataset.url) window.open(button.dataset.url, "_blank", "noopener");
    button.disabled = true;
    say("Sending the click to Orderline…");
    post(root.dataset.clickUrl, {channel: body.dataset.channel, ts: body.dataset.ts, block_id: button.dataset.blockId,
                                 action_id: button.dataset.actionId, user: userSelect.value})
      .then(function (data) {
        button.disabled = false;
        if (data.error) { say(data.error.message, true); return; }
        say("Orderline answered " + data.status + (data.modal ? "; it opened a form." : "."), data.status >= 400);
        if (data.modal) openModal(data.modal);
        shown = ""; refresh();
      })
      .catch(function () { button.disabled = false; say("The click did not reach the sandbox.", true); });
  });

  box.addEventListener("click", function (event) {
    if (event.target.closest("[data-close]")) closeModal();
  });

  box.addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var values = {};
    new FormData(form).forEach(function (value, name) { values[name] = value; });
    form.querySelectorAll(".sk-error").forEach(function (e) { e.hidden = true; e.textContent = ""; });
    post(root.dataset.submitUrl, {view_id: form.dataset.viewId, user: userSelect.value, values: values})
      .then(function (data) {
        if (data.error) { say(data.error.message, true); return; }
        if (data.closed) { closeModal(); say("Form sent; Orderline answered " + data.status + "."); shown = ""; refresh(); return; }
        var errors = data.errors || {};
        var any = false;
        Object.keys(errors).forEach(function (blockId) {
          var slot = form.querySelector('.sk-input[data-block-id="' + CSS.escape(blockId) + '"] .sk-error') ||
            form.querySelector(".sk-form-error");
          slot.textContent = errors[blockId]; slot.hidden = false; any = true;
        });
        if (!any) { var slot = form.querySelector(".sk-form-error"); slot.textContent = "Orderline answered " + data.status; slot.hidden = false; }
      });
  });

  root.querySelectorAll(".sk-channel").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      root.querySelectorAll(".sk-channel").forEach(function (l) { l.classList.remove("active"); });
      link.classList.add("active");
      channel = link.dataset.channel;
      document.getElementById("sk-channel-name").textContent = link.textContent;
      shown = ""; stickToBottom = true; refresh();
    });
  });
  userSelect.addEventListener("change", function () { shown = ""; refresh(); });
  loop();
})();
