// Coffer console: progressive enhancement only — every page works without it.
//  - [data-poll]: replaced every 2 s by the HTML its URL answers, until that
//    answer carries data-final (the job ended).
//  - [data-copy]: a button that copies its value to the clipboard.
//  - form[data-validated]: a change to any field disables its Save button
//    until Validate passes again (the server checks this too).
//  - form[data-confirm]: asks before sending.
"use strict";

function poll(el) {
  const url = el.getAttribute("data-poll");
  const tick = () => {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then((r) => {
        if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
        return r.text();
      })
      .then((html) => {
        const tmp = document.createElement("div");
        tmp.innerHTML = html;
        const next = tmp.firstElementChild;
        if (!next) { return; }
        el.replaceChildren(...next.childNodes);
        if (next.hasAttribute("data-final")) {
          // The job ended: reload once so the actions match its state.
          window.location.reload();
          return;
        }
        setTimeout(tick, 2000);
      })
      .catch(() => setTimeout(tick, 5000));
  };
  setTimeout(tick, 2000);
}

function copyButton(btn) {
  btn.setAttribute("aria-live", "polite");
  const done = () => {
    btn.textContent = "Copied";
    setTimeout(() => { btn.textContent = "Copy"; }, 1500);
  };
  btn.addEventListener("click", () => {
    const value = btn.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done);
      return;
    }
    // Plain HTTP from another machine has no clipboard API: copy through a selection.
    const area = document.createElement("textarea");
    area.value = value;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    try { if (document.execCommand("copy")) { done(); } } finally { area.remove(); }
  });
}

function guardSave(form) {
  const save = form.querySelector("button[value=save]");
  if (!save) { return; }
  form.addEventListener("input", () => {
    save.disabled = true;
    const hint = form.querySelector(".save-hint");
    if (hint) { hint.textContent = "Settings changed: Validate again before saving."; }
  });
}

function confirmSubmit(form) {
  form.addEventListener("submit", (e) => {
    if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("[data-copy]").forEach(copyButton);
  document.querySelectorAll("form[data-validated]").forEach(guardSave);
  document.querySelectorAll("form[data-confirm]").forEach(confirmSubmit);
});
