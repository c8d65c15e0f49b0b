// Switchboard's page: asks the gateway's HTTP API (docs/api.md) with the person's bearer token.
// Everything the server sends is inserted with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "switchboard.token";
const SESSION_KEY = "switchboard.session";
const FINISHED = new Set(["answered", "needs_clarification", "refused", "failed"]);
const POLL_MS = 1500;

const state = {
  tools: new Map(), // tool name -> the tool as GET /v1/tools describes it
  session: sessionStorage.getItem(SESSION_KEY) || "",
  runId: "", // the run shown
  run: null,
  stepNodes: new Map(), // step number -> {node, signature}
  following: null, // AbortController of the event stream being read
  refreshing: false,
  refreshAgain: false,
  pollTimer: 0,
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes, so nothing is parsed as HTML. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// ---- talking to the gateway ----

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** The message of an error answer: `{"error": …}`, or FastAPI's `{"detail": …}`. */
function errorMessage(status, data, text) {
  if (data && typeof data.error === "string" && data.error) return data.error;
  if (data && typeof data.detail === "string") return data.detail;
  if (data && Array.isArray(data.detail)) {
    return data.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return text ? `${status}: ${text.slice(0, 300)}` : `the gateway answered ${status}`;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `Cannot reach the gateway: ${error.message}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, errorMessage(response.status, data, text));
    if (response.status === 401) unauthorised();
    throw error;
  }
  return data;
}

const runPath = (runId) => `/v1/runs/${encodeURIComponent(runId)}`;
const stepPath = (runId, number, action) => `${runPath(runId)}/steps/${number}/${action}`;

// ---- the alert region ----

function showError(error) {
  const box = $("alert");
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  box.replaceChildren(
    el("span", { class: "alert-text", text: message }),
    el("button", { type: "button", class: "alert-close", onclick: clearError }, "Dismiss"),
  );
  box.hidden = false;
}

function clearError() {
  $("alert").hidden = true;
  $("alert").replaceChildren();
}

// ---- logging in and out ----

function unauthorised() {
  sessionStorage.removeItem(TOKEN_KEY);
  stopFollowing();
  $("app").hidden = true;
  $("session-line").hidden = true;
  $("login").hidden = false;
  showError(
    "The gateway did not accept the token (401 Unauthorized). " +
      "Copy it again from the token file in Switchboard's state directory and log in.",
  );
  $("token").focus();
}

async function logIn(event) {
  event.preventDefault();
  const given = $("token").value.trim();
  if (!given) return;
  sessionStorage.setItem(TOKEN_KEY, given);
  $("token").value = "";
  await enter();
}

/** Check the token by loading the tool catalogue, then show the app. */
async function enter() {
  clearError();
  try {
    await loadTools();
  } catch (error) {
    if (error.status !== 401) showError(error);
    if (error.status === 401 || !token()) return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("session-line").hidden = false;
  showSession();
  $("request").focus();
  refreshHistory();
  loadGrants(true);
  if (state.runId) showRun(state.runId);
}

function logOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  stopFollowing();
  clearError();
  $("app").hidden = true;
  $("session-line").hidden = true;
  $("login").hidden = false;
  $("token").focus();
}

async function loadTools() {
  const data = await api("GET", "/v1/tools");
  state.tools = new Map((data.tools || []).map((tool) => [tool.name, tool]));
}

// ---- sessions and requests ----

function setSession(sessionId) {
  state.session = sessionId || "";
  if (state.session) sessionStorage.setItem(SESSION_KEY, state.session);
  else sessionStorage.removeItem(SESSION_KEY);
  showSession();
}

function showSession() {
  $("session-id").textContent = state.session || "new (starts with your next request)";
}

function newSession() {
  stopFollowing();
  setSession("");
  state.runId = "";
  state.run = null;
  $("run").hidden = true;
  $("history-list").replaceChildren();
  $("history-empty").hidden = false;
  $("audit-rows").replaceChildren();
  $("audit-table").hidden = true;
  $("request").focus();
}

async function submitRequest(event) {
  event.preventDefault();
  const text = $("request").value.trim();
  if (!text) {
    showError("Type a request first.");
    $("request").focus();
    return;
  }
  const body = { text };
  if (state.session) body.session_id = state.session;
  if ($("dry-run").checked) body.dry_run = true;
  $("send").disabled = true;
  clearError();
  try {
    const started = await api("POST", "/v1/turns", body);
    setSession(started.session_id);
    $("request").value = "";
    await showRun(started.run_id);
    refreshHistory();
  } catch (error) {
    showError(error);
  } finally {
    $("send").disabled = false;
  }
}

// ---- one run: shown, refreshed on each event, followed until it finishes ----

async function showRun(runId) {
  stopFollowing();
  if (runId !== state.runId) {
    state.runId = runId;
    state.run = null;
    state.stepNodes.clear();
    $("steps").replaceChildren();
    $("answer").textContent = "";
    $("events").replaceChildren();
  }
  $("run").hidden = false;
  markCurrentInHistory();
  let run;
  try {
    run = await api("GET", runPath(runId));
  } catch (error) {
    showError(error);
    return;
  }
  if (runId !== state.runId) return;
  renderRun(run);
  if (!FINISHED.has(run.status)) follow(runId);
}

function stopFollowing() {
  if (state.following) state.following.abort();
  state.following = null;
  clearTimeout(state.pollTimer);
}

/** Read the run's Server-Sent Events with fetch (EventSource cannot send the token). */
async function follow(runId) {
  stopFollowing();
  const controller = new AbortController();
  state.following = controller;
  $("answer").textContent = "";
  $("events").replaceChildren();
  try {
    const response = await fetch(`${runPath(runId)}/events`, {
      headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok) {
      const text = await response.text();
      let data = null;
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
      if (response.status === 401) unauthorised();
      throw new ApiError(response.status, errorMessage(response.status, data, text));
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let kind = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const lines = buffer.split(/\r\n|\n|\r/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) onEvent(runId, kind, data.join("\n"));
          kind = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment, e.g. a keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") kind = value;
        else if (field === "data") data.push(value);
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    showError(error);
  } finally {
    if (state.following === controller) state.following = null;
  }
  if (controller.signal.aborted || runId !== state.runId) return;
  await refreshRun();
  refreshHistory();
  pollUntilFinished(runId);
}

/** When the stream ended before the run did (a dropped connection), ask for the run until it ends. */
function pollUntilFinished(runId) {
  clearTimeout(state.pollTimer);
  if (!state.run || state.run.run_id !== runId || FINISHED.has(state.run.status) || state.following) return;
  state.pollTimer = setTimeout(async () => {
    if (runId !== state.runId || state.following) return;
    await refreshRun();
    pollUntilFinished(runId);
  }, POLL_MS);
}

function onEvent(runId, kind, raw) {
  if (runId !== state.runId) return;
  let event;
  try {
    event = JSON.parse(raw);
  } catch {
    event = { kind, message: raw };
  }
  kind = event.kind || kind;
  const message = event.message || "";
  const when = event.unix_ms ? new Date(event.unix_ms).toLocaleTimeString() : "";
  const label = `${when} ${kind}${event.step ? ` (step ${event.step})` : ""}${message ? `: ${message.trim()}` : ""}`;
  $("events").append(el("li", { dataset: { kind } }, label.trim()));
  if (kind === "answer") {
    $("answer").textContent += message.endsWith("\n") ? message : `${message}\n`;
  } else if (kind === "finished" && message) {
    $("answer").textContent = message;
  }
  if (kind === "granted") loadGrants(true);
  refreshRun();
}

/** Fetch the shown run again; calls that arrive while one is in flight make one more fetch. */
async function refreshRun() {
  if (!state.runId) return;
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  try {
    do {
      state.refreshAgain = false;
      const runId = state.runId;
      const run = await api("GET", runPath(runId));
      if (runId === state.runId) renderRun(run);
    } while (state.refreshAgain);
  } catch (error) {
    showError(error);
  } finally {
    state.refreshing = false;
  }
}

/** Render a run the server returned (after a decision, a fill or an undo) and follow it if it goes on. */
function takeRun(run) {
  if (run.run_id !== state.runId) return;
  renderRun(run);
  if (!FINISHED.has(run.status) && !state.following) follow(run.run_id);
  refreshHistory();
}

function renderRun(run) {
  state.run = run;
  $("run-text").textContent = run.text;
  $("run-id").textContent = run.run_id;
  const status = $("run-status");
  status.textContent = run.dry_run ? `${run.status} (dry run)` : run.status;
  status.dataset.status = run.status;
  const listed = document.querySelector(`.history-run[data-run="${CSS.escape(run.run_id)}"] .status`);
  if (listed) {
    listed.textContent = run.status;
    listed.dataset.status = run.status;
  }
  const seen = new Set();
  const list = $("steps");
  for (const step of run.steps || []) {
    seen.add(step.number);
    const signature = JSON.stringify([
      step.status,
      step.intent,
      step.tool,
      step.arguments,
      step.result,
      step.error,
      step.missing,
      step.preview,
      step.deadline_unix_ms,
      state.tools.get(step.tool)?.undo_supported,
    ]);
    const known = state.stepNodes.get(step.number);
    if (known && known.signature === signature) continue;
    const node = renderStep(run, step);
    if (known) {
      const hadFocus = known.node.contains(document.activeElement);
      known.node.replaceWith(node);
      if (hadFocus) node.querySelector(".step-title").focus();
    } else {
      const after = [...state.stepNodes.entries()].filter(([n]) => n > step.number).sort((a, b) => a[0] - b[0]);
      list.insertBefore(node, after.length ? after[0][1].node : null);
    }
    state.stepNodes.set(step.number, { node, signature });
  }
  for (const [number, known] of state.stepNodes) {
    if (!seen.has(number)) {
      known.node.remove();
      state.stepNodes.delete(number);
    }
  }
  $("no-steps").hidden = (run.steps || []).length > 0;
  if (!state.following && run.answer) $("answer").textContent = run.answer;
  updateDeadlines();
}

/** Keep keyboard focus on a step whose card was just redrawn by the person's own action. */
function focusStep(number) {
  const title = document.getElementById(`step-${number}-title`);
  if (title && !title.closest(".step").contains(document.activeElement)) title.focus();
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function renderStep(run, step) {
  const number = step.number;
  const titleId = `step-${number}-title`;
  const card = el("li", {
    class: "step",
    id: `step-${number}`,
    "aria-labelledby": titleId,
    dataset: { step: String(number), status: step.status },
  });
  card.append(
    el("h4", { class: "step-title", id: titleId, tabindex: "-1" }, `Step ${number}: ${step.intent || "(no intent)"}`),
  );
  const facts = el("dl", { class: "facts" });
  const fact = (name, value, className) => {
    facts.append(el("dt", {}, name), el("dd", { class: className }, value));
  };
  // The tool's name says its server; a step's `server` is only where the plan expected it to land.
  fact("Tool", step.tool || "none chosen yet");
  fact("Status", step.status, `status step-status`);
  facts.lastChild.dataset.status = step.status;
  card.append(facts);
  if (step.arguments && Object.keys(step.arguments).length) {
    card.append(el("p", { class: "label" }, "Arguments"), el("pre", { class: "arguments" }, pretty(step.arguments)));
  }
  if (step.result !== null && step.result !== undefined) {
    card.append(el("p", { class: "label" }, "Result"), el("pre", { class: "result" }, pretty(step.result)));
  }
  if (step.error) card.append(el("p", { class: "step-error" }, `Error: ${step.error}`));
  if (step.status === "awaiting_confirmation") card.append(decisionPanel(run, step));
  if (step.status === "needs_clarification" && (step.missing || []).length) card.append(fillPanel(run, step));
  if (step.status === "succeeded" && state.tools.get(step.tool)?.undo_supported) card.append(undoPanel(run, step));
  return card;
}

// ---- deciding on a waiting step ----

function decisionPanel(run, step) {
  const number = step.number;
  const preview = step.preview || {};
  const typed = preview.tier === "typed";
  const panel = el("div", { class: "decision", role: "group", "aria-labelledby": `decide-${number}-title` });
  panel.append(el("h5", { id: `decide-${number}-title` }, `Step ${number} waits for your decision`));
  panel.append(
    el(
      "p",
      { class: "preview", id: `preview-${number}` },
      preview.text || `Run ${step.tool} with ${JSON.stringify(step.arguments || {})}`,
    ),
  );
  if (step.deadline_unix_ms) {
    panel.append(el("p", { class: "deadline", role: "timer", dataset: { deadline: String(step.deadline_unix_ms) } }));
  }
  const errorBox = el("p", { class: "inline-error", id: `decide-${number}-error`, role: "alert", hidden: true });
  let typedInput = null;
  if (typed) {
    typedInput = el("input", {
      id: `typed-${number}`,
      type: "text",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": `preview-${number}`,
    });
    panel.append(
      el(
        "div",
        { class: "field" },
        el("label", { for: `typed-${number}` }, `Type ${preview.target || "the target's name"} to confirm`),
        typedInput,
      ),
    );
  }
  const buttons = [];
  const decide = async (body) => {
    if (typed && body.approve) body.typed = typedInput.value;
    errorBox.hidden = true;
    buttons.forEach((b) => (b.disabled = true));
    try {
      const updated = await api("POST", stepPath(run.run_id, number, "confirm"), body);
      if (body.scope === "session" || body.scope === "always") loadGrants(true);
      takeRun(updated);
      focusStep(number);
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      if (error.status !== 400 && error.status !== 401) showError(error);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  const button = (text, onclick, className) => {
    const b = el("button", { type: "button", class: className, onclick }, text);
    buttons.push(b);
    return b;
  };
  const approveRow = el("div", { class: "row" });
  approveRow.append(button("Approve once", () => decide({ approve: true, scope: "once" }), "approve"));
  if (!typed) {
    approveRow.append(
      button("Allow for this session", () => decide({ approve: true, scope: "session" })),
      button("Always allow", () => decide({ approve: true, scope: "always" })),
    );
  } else {
    approveRow.append(el("span", { class: "hint" }, "Deletes, sends and overwrites are asked every time."));
  }
  panel.append(approveRow);

  const argsId = `arguments-${number}`;
  const argsBox = el("textarea", { id: argsId, rows: "6", spellcheck: "false" });
  argsBox.value = JSON.stringify(step.arguments || {}, null, 2);
  panel.append(
    el(
      "details",
      { class: "edit" },
      el("summary", {}, "Edit arguments"),
      el("label", { for: argsId }, "Arguments (JSON)"),
      argsBox,
      button("Approve with these arguments", () => {
        let edited;
        try {
          edited = JSON.parse(argsBox.value);
        } catch (error) {
          errorBox.textContent = `The arguments are not valid JSON: ${error.message}`;
          errorBox.hidden = false;
          return;
        }
        if (edited === null || typeof edited !== "object" || Array.isArray(edited)) {
          errorBox.textContent = "The arguments must be a JSON object, like {\"path\": \"…\"}.";
          errorBox.hidden = false;
          return;
        }
        decide({ approve: true, scope: "once", arguments: edited });
      }),
    ),
  );

  const reasonId = `reason-${number}`;
  const reason = el("input", { id: reasonId, type: "text", autocomplete: "off" });
  panel.append(
    el(
      "div",
      { class: "field reject" },
      el("label", { for: reasonId }, "Reason for rejecting"),
      reason,
      button("Reject", () => decide({ approve: false, reason: reason.value.trim() }), "danger"),
    ),
  );
  panel.append(errorBox);
  return panel;
}

function updateDeadlines() {
  for (const node of document.querySelectorAll("[data-deadline]")) {
    const left = Number(node.dataset.deadline) - Date.now();
    if (left <= 0) {
      node.textContent = "The time to decide has passed; the step will be rejected.";
      continue;
    }
    const seconds = Math.ceil(left / 1000);
    const minutes = Math.floor(seconds / 60);
    node.textContent = `Time left to decide: ${minutes}:${String(seconds % 60).padStart(2, "0")}`;
  }
}

// ---- filling open values ----

/** The JSON Schema type of a tool's parameter ("string" when the schema does not say). */
function parameterType(tool, name) {
  const property = tool?.input_schema?.properties?.[name];
  if (!property) return "string";
  const pick = (type) => (Array.isArray(type) ? type.find((t) => t !== "null") : type);
  if (property.type) return pick(property.type) || "string";
  for (const option of property.anyOf || property.oneOf || []) {
    const type = pick(option.type);
    if (type && type !== "null") return type;
  }
  return "string";
}

function parseValue(type, raw, name) {
  if (type === "integer" || type === "number") {
    const value = Number(raw);
    if (raw.trim() === "" || Number.isNaN(value) || (type === "integer" && !Number.isInteger(value))) {
      throw new Error(`${name} must be ${type === "integer" ? "a whole number" : "a number"}`);
    }
    return value;
  }
  if (type === "boolean") return raw === "true";
  if (type === "array" || type === "object") {
    try {
      return JSON.parse(raw);
    } catch {
      if (type === "array") return raw.split(",").map((item) => item.trim()).filter(Boolean);
      throw new Error(`${name} must be a JSON object`);
    }
  }
  return raw;
}

function fillPanel(run, step) {
  const number = step.number;
  const tool = state.tools.get(step.tool);
  const form = el("form", { class: "fill", "aria-labelledby": `fill-${number}-title` });
  form.append(el("h5", { id: `fill-${number}-title` }, `Step ${number} needs these values`));
  const inputs = [];
  for (const name of step.missing) {
    const id = `fill-${number}-${name}`;
    const type = parameterType(tool, name);
    const description = tool?.input_schema?.properties?.[name]?.description || "";
    let input;
    if (type === "boolean") {
      input = el("select", { id }, el("option", { value: "true" }, "yes"), el("option", { value: "false" }, "no"));
    } else {
      input = el("input", {
        id,
        type: type === "integer" || type === "number" ? "number" : "text",
        step: type === "number" ? "any" : type === "integer" ? "1" : undefined,
        required: true,
        autocomplete: "off",
        "aria-describedby": description ? `${id}-hint` : undefined,
      });
    }
    inputs.push({ name, type, input });
    form.append(
      el(
        "div",
        { class: "field" },
        el("label", { for: id }, name),
        input,
        description ? el("span", { class: "hint", id: `${id}-hint` }, description) : null,
      ),
    );
  }
  const send = el("button", { type: "submit" }, "Send values");
  const errorBox = el("p", { class: "inline-error", role: "alert", hidden: true });
  form.append(send, errorBox);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const values = {};
    try {
      for (const { name, type, input } of inputs) values[name] = parseValue(type, input.value, name);
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      return;
    }
    send.disabled = true;
    try {
      takeRun(await api("POST", stepPath(run.run_id, number, "fill"), { values }));
      focusStep(number);
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

// ---- undo ----

function undoPanel(run, step) {
  const errorBox = el("p", { class: "inline-error", role: "alert", hidden: true });
  const button = el("button", { type: "button", class: "undo" }, `Undo step ${step.number}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    errorBox.hidden = true;
    try {
      takeRun(await api("POST", stepPath(run.run_id, step.number, "undo")));
      focusStep(step.number);
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      button.disabled = false;
    }
  });
  return el("div", { class: "row" }, button, errorBox);
}

// ---- history ----

async function refreshHistory() {
  const list = $("history-list");
  if (!state.session) {
    list.replaceChildren();
    $("history-empty").hidden = false;
    return;
  }
  const session = state.session;
  let data;
  try {
    data = await api("GET", `/v1/runs?limit=50&session_id=${encodeURIComponent(session)}`);
  } catch (error) {
    showError(error);
    return;
  }
  if (session !== state.session) return;
  // An older gateway ignores session_id; keep only this session's runs either way.
  const runs = (data.runs || []).filter((run) => run.session_id === session);
  list.replaceChildren(
    ...runs.map((run) => {
      const when = run.created_unix_ms ? new Date(run.created_unix_ms).toLocaleTimeString() : "";
      return el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "history-run", dataset: { run: run.run_id }, onclick: () => showRun(run.run_id) },
          el("span", { class: "history-text" }, run.text),
          el("span", { class: "status", dataset: { status: run.status } }, run.status),
          el("span", { class: "muted" }, when),
        ),
      );
    }),
  );
  $("history-empty").hidden = runs.length > 0;
  markCurrentInHistory();
}

function markCurrentInHistory() {
  for (const button of document.querySelectorAll(".history-run")) {
    if (button.dataset.run === state.runId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

// ---- audit trail ----

function formatTime(value) {
  if (typeof value === "number" && value > 0) return new Date(value > 1e12 ? value : value * 1000).toLocaleString();
  if (typeof value === "string" && value) {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? value : new Date(parsed).toLocaleString();
  }
  return "";
}

async function loadAudit() {
  const query = new URLSearchParams({ limit: "200" });
  if ($("audit-session-only").checked && state.session) query.set("session_id", state.session);
  let data;
  try {
    data = await api("GET", `/v1/audit?${query}`);
  } catch (error) {
    showError(error);
    return;
  }
  const entries = data.entries || [];
  $("audit-rows").replaceChildren(
    ...entries.map((entry) =>
      el(
        "tr",
        { dataset: { tool: entry.tool || "", confirmation: entry.confirmation || "" } },
        el("td", {}, formatTime(entry.at)),
        el("td", {}, el("code", { title: entry.run_id || "" }, (entry.run_id || "").slice(0, 8))),
        el("td", {}, entry.step ? String(entry.step) : ""),
        el("td", {}, entry.tool || ""),
        el("td", {}, entry.confirmation || ""),
        // An undo or a decision is written beside the call it concerns; say which a row is.
        el("td", {}, entry.kind && entry.kind !== "call" ? `${entry.status || ""} (${entry.kind})` : entry.status || ""),
        el("td", {}, entry.error || ""),
      ),
    ),
  );
  $("audit-table").hidden = entries.length === 0;
  $("audit-empty").hidden = entries.length > 0;
}

// ---- standing grants ----

async function loadGrants(quiet = false) {
  let data;
  try {
    data = await api("GET", "/v1/grants");
  } catch (error) {
    if (quiet && error.status !== 401) {
      $("grants-empty").textContent = `Grants are not available: ${error.message}`;
      $("grants-empty").hidden = false;
    } else {
      showError(error);
    }
    return;
  }
  const grants = data.grants || [];
  $("grants-list").replaceChildren(
    ...grants.map((grant) => {
      const scope = grant.scope === "session" ? `this tool in session ${(grant.session_id || "").slice(0, 8)}` : "always";
      const revoke = el(
        "button",
        { type: "button", class: "danger", "aria-label": `Revoke the grant for ${grant.tool}` },
        "Revoke",
      );
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await api("DELETE", `/v1/grants/${encodeURIComponent(grant.grant_id)}`);
          await loadGrants();
        } catch (error) {
          showError(error);
          revoke.disabled = false;
        }
      });
      return el(
        "li",
        { dataset: { grant: grant.grant_id } },
        el("span", { class: "grant-tool" }, grant.tool),
        el("span", { class: "muted" }, ` ${scope}, since ${formatTime(grant.created_unix_ms)}`),
        revoke,
      );
    }),
  );
  $("grants-empty").textContent = "No standing grants.";
  $("grants-empty").hidden = grants.length > 0;
}

// ---- wiring ----

function start() {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("new-session").addEventListener("click", newSession);
  $("ask-form").addEventListener("submit", submitRequest);
  $("request").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("history-refresh").addEventListener("click", refreshHistory);
  $("grants-refresh").addEventListener("click", () => loadGrants());
  $("audit-load").addEventListener("click", loadAudit);
  setInterval(updateDeadlines, 1000);
  showSession();
  if (token()) enter();
  else $("token").focus();
}

start();
