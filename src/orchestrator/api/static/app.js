// Active Plans page: plain JavaScript over the Plans API, no build step, no external resources.
// Data is only ever put on the page with textContent, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "planpolicy.token";
  const MAX_PAGES = 20;
  const $ = (id) => document.getElementById(id);

  let current = null; // {plan, etag} of the plan on screen
  let pendingTrigger = null;

  // --- the token -------------------------------------------------------------

  function takeTokenFromHash() {
    const match = /^#token=(.+)$/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search + "#/");
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  // --- talking to the API ----------------------------------------------------

  function apiUrl(path) {
    return new URL("../v1/" + path, location.href).toString();
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) {
      return crypto.randomUUID();
    }
    return "k-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json", Authorization: "Bearer " + token() };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    Object.assign(headers, opts.headers || {});
    let response;
    try {
      response = await fetch(apiUrl(path), {
        method: opts.method || "GET",
        headers: headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        cache: "no-store",
      });
    } catch (err) {
      return { ok: false, status: 0, data: { title: "Network error", detail: String(err) } };
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = { title: "Unreadable response", detail: text.slice(0, 200) };
      }
    }
    if (response.status === 401) {
      signOut("Your token was refused: " + ((data && data.detail) || "sign in again"));
    }
    return { ok: response.ok, status: response.status, data: data, etag: response.headers.get("ETag") };
  }

  // --- small DOM helpers ----------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") {
        node.textContent = value;
      } else if (name === "className") {
        node.className = value;
      } else {
        node.setAttribute(name, value);
      }
    }
    for (const child of children || []) {
      node.append(child);
    }
    return node;
  }

  function when(value) {
    if (!value) {
      return "—";
    }
    const date = new Date(value);
    return date.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC").replace(/:\d\dZ$/, " UTC");
  }

  function statusBadge(status) {
    return el("span", { className: "status status-" + status, text: status });
  }

  function problemNode(problem, status) {
    const p = problem || {};
    const box = el("div", { className: "refused", "data-problem": p.type || String(status) });
    box.append(el("strong", { text: (p.title || "Request failed") + (status ? " (" + status + ")" : "") }));
    if (p.detail) {
      box.append(el("div", { text: p.detail }));
    }
    const reasons = p.reasons || [];
    if (reasons.length) {
      const list = el("ul", { className: "reasons" });
      for (const r of reasons) {
        list.append(el("li", {}, [el("code", { text: r.code }), " " + r.message]));
      }
      box.append(list);
    }
    for (const e of p.errors || []) {
      box.append(el("div", { text: e.field + ": " + e.detail }));
    }
    return box;
  }

  // --- sign-in ----------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("main").hidden = true;
    $("signout").hidden = true;
    $("who").textContent = "";
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
  }

  async function start() {
    if (!token()) {
      signOut("");
      return;
    }
    const me = await api("me");
    if (!me.ok) {
      return;
    }
    $("who").textContent = me.data.user_id + " · " + me.data.tenant_id +
      (me.data.roles.length ? " · " + me.data.roles.join(", ") : "");
    $("signin").hidden = true;
    $("signout").hidden = false;
    $("main").hidden = false;
    const types = await api("plan-types");
    if (types.ok) {
      const select = $("f-type");
      while (select.options.length > 1) {
        select.remove(1);
      }
      for (const t of types.data) {
        select.append(el("option", { value: t.name, text: t.name }));
      }
    }
    route();
  }

  // --- the list -----------------------------------------------------------------

  async function loadList() {
    $("list-view").hidden = false;
    $("detail-view").hidden = true;
    $("list-error").textContent = "";
    const status = $("f-status").value;
    const statuses = status ? [status] : ["ACTIVE", "PAUSED"];
    const rows = [];
    for (const s of statuses) {
      let cursor = null;
      for (let page = 0; page < MAX_PAGES; page++) {
        const query = new URLSearchParams({ status: s, limit: "100" });
        if ($("f-account").value.trim()) {
          query.set("account_id", $("f-account").value.trim());
        }
        if ($("f-type").value) {
          query.set("plan_type", $("f-type").value);
        }
        if (cursor) {
          query.set("cursor", cursor);
        }
        const result = await api("plans?" + query.toString());
        if (!result.ok) {
          $("list-error").replaceChildren(problemNode(result.data, result.status));
          return;
        }
        rows.push(...result.data.items);
        cursor = result.data.next_cursor;
        if (!cursor) {
          break;
        }
      }
    }
    const body = $("plans").querySelector("tbody");
    body.replaceChildren();
    for (const plan of rows) {
      const link = el("a", { href: "#/plans/" + encodeURIComponent(plan.plan_id), text: plan.plan_id });
      body.append(el("tr", { "data-plan-id": plan.plan_id }, [
        el("td", {}, [link]),
        el("td", { text: plan.account_id }),
        el("td", { text: plan.plan_type }),
        el("td", {}, [statusBadge(plan.status)]),
        el("td", { text: plan.risk || "—" }),
        el("td", { text: plan.steps_settled + " / " + plan.steps_total }),
        el("td", { text: when(plan.expires_at) }),
        el("td", { text: when(plan.updated_at) }),
      ]));
    }
    $("list-empty").hidden = rows.length > 0;
  }

  // --- one plan -------------------------------------------------------------------

  async function loadPlan(planId) {
    $("list-view").hidden = true;
    $("detail-view").hidden = false;
    $("detail-error").textContent = "";
    const [plan, ledger] = await Promise.all([
      api("plans/" + encodeURIComponent(planId)),
      api("plans/" + encodeURIComponent(planId) + "/ledger?limit=1000"),
    ]);
    if (!plan.ok) {
      current = null;
      $("detail-body").hidden = true;
      $("detail-error").replaceChildren(problemNode(plan.data, plan.status));
      return;
    }
    current = { plan: plan.data, etag: plan.etag };
    $("detail-body").hidden = false;
    renderPlan(plan.data);
    renderLedger(ledger.ok ? ledger.data : null);
  }

  function renderPlan(plan) {
    $("d-title").replaceChildren(plan.plan_type + " · " + plan.account_id + " ", statusBadge(plan.status));
    const facts = [
      ["Plan", plan.plan_id],
      ["Status", plan.status],
      ["Risk", plan.risk || "—"],
      ["Owner", plan.owner],
      ["Objective", plan.objective || "—"],
      ["Approved by", plan.approved_by || "—"],
      ["Activated", when(plan.activated_at)],
      ["Expires", when(plan.expires_at)],
      ["Next look", when(plan.next_due_at)],
      ["Version", String(plan.version)],
    ];
    $("d-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v, "data-fact": k })]));
    for (const button of $("d-actions").querySelectorAll("button")) {
      const trigger = button.dataset.trigger;
      button.disabled = !plan.allowed_triggers.includes(trigger);
      button.title = plan.permitted.includes(trigger) ? "" : "Your roles may not " + trigger + " this plan";
    }
    const steps = $("steps").querySelector("tbody");
    steps.replaceChildren(...plan.steps.map((s) => el("tr", { "data-step-id": s.step_id }, [
      el("td", { text: s.action_type }),
      el("td", {}, [statusBadge(s.status)]),
      el("td", { text: s.attempts + (s.retry_limit ? " / " + s.retry_limit : "") }),
      el("td", { text: s.risk || "—" }),
      el("td", { text: s.human_touch ? (s.human_approved_by ? "approved by " + s.human_approved_by : "awaiting approval") : "no" }),
      el("td", { text: when(s.due_at) }),
      el("td", { text: s.last_error || s.skip_reason || "" }),
    ])));
    const gate = plan.latest_gate;
    if (!gate) {
      $("gate").replaceChildren(el("p", { className: "muted", text: "No gate decision recorded yet." }));
    } else {
      const head = el("p", { text: (gate.can_activate ? "Allowed" : "Denied") + " at " + when(gate.decided_at) });
      const list = el("ul", { className: "reasons" });
      for (const r of gate.reasons) {
        list.append(el("li", {}, [el("code", { text: r.code }), " " + r.message]));
      }
      $("gate").replaceChildren(head, list);
    }
  }

  function renderLedger(ledger) {
    const list = $("ledger");
    if (!ledger) {
      list.replaceChildren(el("li", { className: "muted", text: "The ledger could not be read." }));
      return;
    }
    list.replaceChildren(...ledger.entries.map((e) => el("li", { "data-seq": String(e.seq), "data-event": e.event }, [
      el("span", { className: "event", text: e.event }),
      el("span", { className: "meta", text: " · " + when(e.time) + " · " + e.actor }),
      el("div", { className: "why", text: e.reason }),
    ])));
  }

  // --- pause / resume / abort --------------------------------------------------------

  function askReason(trigger) {
    pendingTrigger = trigger;
    $("reason-action").textContent = trigger;
    $("reason-input").value = "";
    $("reason-form").hidden = false;
    $("result").replaceChildren();
    $("reason-input").focus();
  }

  async function submitReason(event) {
    event.preventDefault();
    if (!current || !pendingTrigger) {
      return;
    }
    const trigger = pendingTrigger;
    const reason = $("reason-input").value.trim();
    if (!reason) {
      $("reason-input").focus();
      return;
    }
    $("reason-submit").disabled = true;
    const planId = current.plan.plan_id;
    const headers = { "Idempotency-Key": newKey() };
    if (current.etag) {
      headers["If-Match"] = current.etag;
    }
    const result = await api("plans/" + encodeURIComponent(planId) + "/" + trigger, {
      method: "POST",
      body: { reason: reason },
      headers: headers,
    });
    $("reason-submit").disabled = false;
    pendingTrigger = null;
    $("reason-form").hidden = true;
    if (result.ok) {
      await loadPlan(planId);
      $("result").replaceChildren(el("span", { className: "ok", text: "Done: the plan is now " + result.data.status + "." }));
    } else {
      $("result").replaceChildren(problemNode(result.data, result.status));
    }
  }

  // --- routing ----------------------------------------------------------------------------

  function route() {
    if (!token()) {
      return;
    }
    const match = /^#\/plans\/(.+)$/.exec(location.hash);
    if (match) {
      loadPlan(decodeURIComponent(match[1]));
    } else {
      loadList();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (value) {
        sessionStorage.setItem(TOKEN_KEY, value);
        $("token-input").value = "";
        start();
      }
    });
    $("signout").addEventListener("click", () => signOut("Signed out."));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      if (location.hash !== "#/" && location.hash !== "") {
        location.hash = "#/";
      } else {
        loadList();
      }
    });
    for (const button of $("d-actions").querySelectorAll("button")) {
      button.addEventListener("click", () => askReason(button.dataset.trigger));
    }
    $("reason-form").addEventListener("submit", submitReason);
    $("reason-cancel").addEventListener("click", () => {
      pendingTrigger = null;
      $("reason-form").hidden = true;
    });
    window.addEventListener("hashchange", route);
    takeTokenFromHash();
    start();
  });
})();
