// The expert page: show the next task, send the answer, fetch the next one; poll while nothing waits.
// Everything that comes from events (text, labels, reasons, URLs) is written with textContent or as an
// attribute value, never as HTML.
"use strict";

(function () {
  const NAME_KEY = "labelloop.expert";
  let pollMs = 2000;
  let expert = null;
  let task = null;
  let busy = false;
  let pollTimer = null;

  const $ = (id) => document.getElementById(id);

  function show(id, visible) { $(id).hidden = !visible; }

  function say(message) {
    $("message").textContent = message || "";
    show("message", Boolean(message));
  }

  function counters(values) {
    if (!values) return;
    $("waiting").textContent = String(values.waiting_for_you ?? values.waiting);
    if (values.answered_by_you !== null && values.answered_by_you !== undefined) {
      $("answered").textContent = String(values.answered_by_you);
    }
  }

  async function call(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options));
    if (response.status === 401) {
      say("This page needs an access token: open the link the operator gave you (…/?token=…).");
      throw new Error("unauthorized");
    }
    return response;
  }

  function clearPoll() {
    if (pollTimer !== null) { clearTimeout(pollTimer); pollTimer = null; }
  }

  function poll() {
    clearPoll();
    pollTimer = setTimeout(next, pollMs);
  }

  function percent(value) { return (100 * value).toFixed(0) + "%"; }

  function render(view) {
    task = view;
    $("route").textContent = view.route;
    $("reason").textContent = view.reason;
    $("priority").textContent = Number(view.priority).toFixed(2);

    const text = view.input.text;
    $("task-text").textContent = text ?? "";
    show("task-text", text !== null && text !== undefined);

    const image = view.input.image_url;
    const displayable = typeof image === "string" && /^https?:\/\//i.test(image);
    $("task-image").hidden = !displayable;
    if (displayable) { $("task-image").src = image; } else { $("task-image").removeAttribute("src"); }
    $("image-ref").textContent = image && !displayable ? image : "";
    show("image-line", Boolean(image));

    const rows = $("features").tBodies[0];
    rows.replaceChildren();
    const features = view.input.features || {};
    for (const [name, value] of Object.entries(features)) {
      const row = rows.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = String(value);
    }
    show("features", rows.rows.length > 0);

    $("prediction-label").textContent = view.prediction.label;
    $("prediction-confidence").textContent =
      "(" + percent(view.prediction.confidence) + ", " + view.prediction.model_name + ")";
    const suggestion = view.suggestion;
    show("suggestion", Boolean(suggestion));
    if (suggestion) {
      $("suggestion-label").textContent = suggestion.label;
      $("suggestion-detail").textContent = "(" + percent(suggestion.confidence) + ", " + suggestion.model_name + ")";
    }

    const group = $("labels");
    group.replaceChildren();
    view.labels.forEach((label, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      if (index < 9) {
        const key = document.createElement("kbd");
        key.textContent = String(index + 1);
        button.append(key);
      }
      button.append(document.createTextNode(label));
      if (suggestion && suggestion.label === label) button.classList.add("suggested");
      button.addEventListener("click", () => answer(label));
      group.append(button);
    });
    $("keys-help").lastChild.textContent = suggestion ? " pick a class, Enter accepts the suggestion." : " pick a class.";

    counters(view.counters);
    show("empty", false);
    show("task", true);
  }

  function nothingWaiting() {
    task = null;
    show("task", false);
    show("empty", true);
    poll();
  }

  async function next() {
    clearPoll();
    if (!expert) return;
    try {
      const response = await call("/api/next?expert=" + encodeURIComponent(expert));
      if (response.status === 204) { nothingWaiting(); status(); return; }
      const body = await response.json();
      if (!response.ok) { say(body.error || "could not fetch the next task"); poll(); return; }
      say("");
      render(body);
    } catch (error) {
      if (error.message !== "unauthorized") { say("The server cannot be reached; retrying…"); poll(); }
    }
  }

  async function status() {
    try {
      const query = expert ? "?expert=" + encodeURIComponent(expert) : "";
      const response = await call("/api/status" + query);
      if (!response.ok) return;
      const body = await response.json();
      pollMs = Math.max(250, 1000 * body.poll_s);
      counters(body);
      if (body.paused && !task) say("The expert pool is paused: no new tasks are handed out.");
    } catch (error) { /* next() reports it */ }
  }

  async function answer(label) {
    if (!task || busy) return;
    busy = true;
    for (const button of $("labels").querySelectorAll("button")) button.disabled = true;
    try {
      const response = await call("/api/answer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ event_id: task.event_id, expert: expert, label: label }),
      });
      const body = await response.json();
      if (response.ok) {
        say("");
        counters(body.counters);
      } else if (response.status === 409) {
        say("That task was already finished (" + (body.error || "closed") + "); here is the next one.");
      } else {
        say(body.error || "the answer was not accepted");
        for (const button of $("labels").querySelectorAll("button")) button.disabled = false;
        return;
      }
      task = null;
      await next();
    } catch (error) {
      if (error.message !== "unauthorized") say("The answer could not be sent; try again.");
      for (const button of $("labels").querySelectorAll("button")) button.disabled = false;
    } finally {
      busy = false;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (!task || event.target.closest("input, textarea, form")) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Enter" && task.suggestion) {
      event.preventDefault();
      answer(task.suggestion.label);
    } else if (/^[1-9]$/.test(event.key)) {
      const label = task.labels[Number(event.key) - 1];
      if (label !== undefined) { event.preventDefault(); answer(label); }
    }
  });

  // Expert ids carry no spaces (they become worker ids on the wire): "Ada Lovelace" -> "Ada-Lovelace".
  function normalise(name) { return name.trim().replace(/\s+/g, "-").slice(0, 64); }

  function begin(name) {
    expert = name;
    $("expert-name").textContent = name;
    show("who", true);
    show("name-form", false);
    status();
    next();
  }

  function askName() {
    clearPoll();
    task = null;
    show("task", false);
    show("empty", false);
    show("who", false);
    show("name-form", true);
    $("name-input").focus();
  }

  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = normalise($("name-input").value);
    if (!name) return;
    localStorage.setItem(NAME_KEY, name);
    begin(name);
  });
  $("change-name").addEventListener("click", () => {
    localStorage.removeItem(NAME_KEY);
    $("name-input").value = expert || "";
    askName();
  });

  const known = localStorage.getItem(NAME_KEY);
  if (known) { begin(known); } else { askName(); status(); }
})();
