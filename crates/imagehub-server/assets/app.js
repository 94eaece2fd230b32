// imagehub's one script. Every page works without it; it only adds copy buttons,
// search as you type, a live preview while editing docs, live import progress and
// confirmations. It is served from the hub itself (CSP: script-src 'self') and injects
// no HTML from strings: new content comes from pages the hub rendered and sanitised,
// parsed with DOMParser.
"use strict";

/** Adds a "Copy" button after `element`, copying what `text()` returns. */
function addCopyButton(element, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy to the clipboard");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.textContent = "Copied";
    } catch (_) {
      // No clipboard (plain HTTP is not a secure context): select the text to copy by hand.
      const range = document.createRange();
      range.selectNodeContents(element);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (element.select) element.select();
      button.textContent = "Press Ctrl+C";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
  element.after(button);
}

function copyButtons() {
  for (const input of document.querySelectorAll(".pull input[readonly]")) {
    addCopyButton(input, () => input.value);
  }
  for (const pre of document.querySelectorAll("details.commands pre")) {
    addCopyButton(pre, () => pre.textContent);
  }
}

/** Fetches a page of this hub and returns it parsed, or null. */
async function fetchPage(url, options) {
  const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
  if (!response.ok) return null;
  return new DOMParser().parseFromString(await response.text(), "text/html");
}

/** Waits until `ms` pass without another call before running `action`. */
function debounced(ms, action) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => action(...args), ms);
  };
}

function searchAsYouType() {
  const box = document.getElementById("q");
  const main = document.querySelector("main");
  if (!box || !main || location.pathname !== "/") return;
  let latest = 0;
  box.addEventListener("input", debounced(250, async () => {
    const ticket = ++latest;
    const query = box.value.trim();
    const url = query ? "/?q=" + encodeURIComponent(query) : "/";
    const page = await fetchPage(url);
    // An answer to an older query must not replace a newer one.
    if (!page || ticket !== latest) return;
    main.replaceChildren(...page.querySelector("main").childNodes);
    document.title = page.title;
    history.replaceState(null, "", url);
  }));
}

function livePreview() {
  const form = document.querySelector("form.edit-form");
  const docs = document.getElementById("docs");
  if (!form || !docs) return;
  let latest = 0;
  docs.addEventListener("input", debounced(400, async () => {
    const ticket = ++latest;
    const body = new URLSearchParams(new FormData(form));
    body.set("action", "preview");
    // getAttribute: `form.action` would be the buttons named "action".
    const page = await fetchPage(form.getAttribute("action"), { method: "POST", body });
    const fresh = page && page.querySelector(".preview");
    if (!fresh || ticket !== latest) return;
    const current = form.querySelector(".preview");
    if (current) {
      current.replaceWith(fresh);
    } else {
      form.querySelector(".buttons").before(fresh);
    }
  }));
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

/** Keeps the import jobs of a page current while some are still going. */
function liveImports() {
  const page = document.querySelector("[data-live-imports]");
  if (!page) return;
  const refresh = async () => {
    const fresh = await fetchPage(window.location.href);
    const jobs = fresh && fresh.getElementById("jobs");
    if (jobs) document.getElementById("jobs").replaceWith(document.adoptNode(jobs));
    if (fresh && fresh.querySelector("[data-live-imports]")) setTimeout(refresh, 2000);
  };
  setTimeout(refresh, 2000);
}

copyButtons();
searchAsYouType();
liveImports();
livePreview();
confirmations();
