// A campaign's contact sync, as the guide's wizard: which contacts, which fields go to Referral
// Factory and which come back, once or ongoing; then its progress until it ends. Also the campaign's
// sync history and the ongoing sync on its own.
import { field, h, replace, select, table, uid, when } from "./dom.js";
import { FIELD_DATA_TYPES, FIELD_LABELS, writable } from "./fields.js";

export const AUDIENCES = [
  ["leads", "Only your Leads"],
  ["users", "Only your Users"],
  ["all", "All Contacts"],
  ["segment", "Members of a specific Segment"],
];
const AUDIENCE_TEXT = Object.fromEntries(AUDIENCES);
const INBOUND = ["first_name", "email"];
const RETURN = ["referral_link", "referrals_count", "converted_referrals_count"];
// What each field is mapped to when nothing is saved yet, if the workspace has it.
const SUGGESTED = {
  first_name: "name",
  email: "email",
  referral_link: "custom_attributes.referral_link",
  referrals_count: "custom_attributes.referrals_count",
  converted_referrals_count: "custom_attributes.converted_referrals_count",
};
const RUNNING = new Set(["queued", "running"]);
const POLL_MS = 1000;
const COUNTERS = ["processed", "created", "updated", "skipped", "failed"];

export function audienceText(sync, segments = []) {
  if (sync.audience !== "segment") return AUDIENCE_TEXT[sync.audience] || sync.audience || "—";
  const segment = segments.find((s) => s.id === sync.segment_id);
  return `Segment ${segment ? segment.name : sync.segment_id}`;
}

/**
 * The progress of sync `syncId`, followed with GET /v1/syncs/{id} until it ends, then kept with its
 * final counts. `onEnd(sync)` runs once when it ends.
 */
export function syncProgress(ctx, syncId, { onEnd } = {}) {
  const { api, signal, announce } = ctx;
  const labelId = uid("progress");
  const bar = h("progress", { "aria-labelledby": labelId, "aria-valuemin": "0" });
  const state = h("p", { class: "sync-state" }, "Queued");
  const counters = h("dl", { class: "counters" });
  const errors = h("div", {});
  const cancel = h("button", { type: "button" }, "Cancel sync");
  const box = h("div", { class: "progress-box" },
    h("label", { id: labelId, class: "progress-label" }, "Sync progress"), bar, state, counters, errors, cancel);
  let ended = false;

  function show(sync) {
    const total = Number(sync.total) || 0;
    const processed = Number(sync.processed) || 0;
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(processed));
    if (total > 0) {
      bar.max = total;
      bar.value = Math.min(processed, total);
    } else if (!RUNNING.has(sync.status)) {
      bar.max = 1;
      bar.value = 1; // an empty audience is a finished one
    } else {
      bar.removeAttribute("value"); // the audience is still being counted
    }
    const percent = total ? Math.floor((processed / total) * 100) : (RUNNING.has(sync.status) ? 0 : 100);
    bar.setAttribute("aria-valuetext", `${processed} of ${total} contacts (${percent} %)`);
    state.textContent = `${statusText(sync.status)}: ${processed} of ${total} contacts (${percent} %)`;
    replace(counters, COUNTERS.map((k) => h("div", {}, h("dt", {}, k[0].toUpperCase() + k.slice(1)), h("dd", {}, String(sync[k] ?? 0)))));
    const list = sync.errors || [];
    replace(errors, list.length
      ? h("details", {}, h("summary", {}, `${list.length} contact(s) failed`),
        h("ul", {}, list.slice(0, 50).map((e) => h("li", {}, `${e.contact_id}: ${e.code} — ${e.message}`))))
      : null);
    cancel.hidden = !RUNNING.has(sync.status);
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      show(await api.post(`v1/syncs/${encodeURIComponent(syncId)}/cancel`, {}, { signal }));
    } catch (error) {
      state.textContent = `Could not cancel: ${error.message}`;
    } finally {
      cancel.disabled = false;
    }
  });

  async function follow() {
    while (!signal.aborted) {
      let sync;
      try {
        sync = await api.get(`v1/syncs/${encodeURIComponent(syncId)}`, { signal });
      } catch (error) {
        if (signal.aborted) return;
        state.textContent = `Could not read the sync's progress: ${error.message}. Retrying…`;
        await sleep(POLL_MS * 3, signal);
        continue;
      }
      show(sync);
      if (!RUNNING.has(sync.status)) {
        if (!ended) {
          ended = true;
          announce(`Sync ${statusText(sync.status).toLowerCase()}: ${sync.processed} of ${sync.total} contacts.`);
          if (onEnd) onEnd(sync);
        }
        return;
      }
      await sleep(POLL_MS, signal);
    }
  }
  follow();
  return box;
}

function statusText(status) {
  return { queued: "Queued", running: "Running", completed: "Completed", failed: "Failed", paused: "Paused (Intercom access revoked)", cancelled: "Cancelled" }[status] || status;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { window.clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** The campaign's syncs, newest first, as a table. */
export function historyTable(syncs, segments) {
  if (!syncs.length) return h("p", { class: "hint" }, "No sync has run for this campaign yet.");
  const rows = syncs.map((s) => h("tr", {},
    h("td", {}, when(s.started_at)),
    h("td", {}, audienceText(s, segments)),
    h("td", {}, s.trigger === "schedule" ? "Scheduled" : "Manual"),
    h("td", {}, statusText(s.status)),
    h("td", {}, `${s.processed ?? 0} / ${s.total ?? 0}`),
    h("td", {}, String(s.created ?? 0)),
    h("td", {}, String(s.updated ?? 0)),
    h("td", {}, String(s.skipped ?? 0)),
    h("td", {}, String(s.failed ?? 0))));
  return table("Sync history", ["Started", "Contacts", "Trigger", "Status", "Processed", "Created", "Updated", "Skipped", "Failed"], rows);
}

/**
 * The wizard. Step 1: which contacts. Step 2: the fields (inbound and return), ongoing or not, Start Sync,
 * which saves the settings' sync section (the other sections as they are) and starts the sync. Step 3:
 * its progress. `page` is the campaign page (settings, attributes, segments, errors, save).
 */
export function syncWizard(ctx, page, { onClose, onStarted }) {
  const { api, signal } = ctx;
  const saved = page.settings()?.sync || {};
  const titleId = uid("wizard");
  const root = h("section", { class: "card wizard", "aria-labelledby": titleId });
  const heading = h("h2", { id: titleId }, "Sync Your Contacts");
  const close = h("button", { type: "button", class: "quiet" }, "Close");
  close.addEventListener("click", () => onClose());
  const body = h("div", {});
  replace(root, h("div", { class: "wizard-head" }, heading, close), body);
  let audience = "users";
  let segmentId = "";

  function stepOne() {
    const name = uid("audience");
    const radios = AUDIENCES.map(([value, text]) => {
      const input = h("input", { type: "radio", name, value, checked: value === audience, id: uid("aud") });
      return { input, wrap: h("div", { class: "field inline" }, input, h("label", { for: input.id }, text)) };
    });
    const segments = page.segments();
    const segmentSelect = select(
      [["", segments.length ? "Choose a segment" : "No segments in this workspace"],
        ...segments.map((s) => [s.id, s.count === null || s.count === undefined ? s.name : `${s.name} (${s.count})`])],
      segmentId);
    const segmentField = field("Segment", segmentSelect);
    const problem = h("p", { class: "field-error", role: "alert", hidden: true });
    const sync = () => {
      const chosen = radios.find((r) => r.input.checked)?.input.value || audience;
      segmentSelect.disabled = chosen !== "segment";
    };
    for (const r of radios) r.input.addEventListener("change", sync);
    sync();
    const next = h("button", { type: "button", class: "primary" }, "Next");
    next.addEventListener("click", () => {
      audience = radios.find((r) => r.input.checked)?.input.value || audience;
      segmentId = segmentSelect.value;
      if (audience === "segment" && !segmentId) {
        problem.textContent = "Choose the segment whose members to sync.";
        problem.hidden = false;
        segmentSelect.focus();
        return;
      }
      stepTwo();
    });
    replace(body,
      h("p", { class: "step" }, "Step 1 of 2"),
      h("fieldset", {}, h("legend", {}, "Which contacts should become referrers?"), radios.map((r) => r.wrap)),
      segmentField.wrap, problem,
      h("p", { class: "hint" }, "Synced contacts are not notified. Contacts synced before are not duplicated in the campaign."),
      h("div", { class: "actions" }, next));
    // The first step is drawn before the wizard joins the page: focus once it has.
    const first = (radios.find((r) => r.input.checked) || radios[0]).input;
    window.setTimeout(() => first.focus(), 0);
  }

  function stepTwo() {
    const attrs = page.attributes;
    const pickers = {};
    const createButtons = [];
    const mappingValue = (group, key) => (group && group[key]) || (attrs.find(SUGGESTED[key]) ? SUGGESTED[key] : "");
    for (const key of INBOUND) {
      pickers[key] = page.errors.register(`sync.inbound_mapping.${key}`,
        attrs.picker(FIELD_LABELS[key], { value: mappingValue(saved.inbound_mapping, key), path: `sync.inbound_mapping.${key}` }));
    }
    for (const key of RETURN) {
      pickers[key] = page.errors.register(`sync.return_mapping.${key}`,
        attrs.picker(FIELD_LABELS[key], { value: mappingValue(saved.return_mapping, key), filter: writable, path: `sync.return_mapping.${key}` }));
      const suggested = SUGGESTED[key];
      if (!attrs.find(suggested)) {
        const shortName = suggested.replace("custom_attributes.", "");
        const create = h("button", { type: "button", class: "small" }, `Create attribute ${shortName}`);
        create.addEventListener("click", async () => {
          create.disabled = true;
          try {
            const made = await api.post("v1/intercom/attributes",
              { name: shortName, data_type: FIELD_DATA_TYPES[key] || "string", description: `Referral Factory: ${FIELD_LABELS[key]}` },
              { query: page.workspaceQuery(), signal });
            attrs.add("contact", made);
            pickers[key].control.value = made.full_name;
            create.remove();
            ctx.announce(`Created the Intercom attribute ${made.label || made.full_name}.`);
          } catch (error) {
            create.disabled = false;
            page.errors.show([{ field: `sync.return_mapping.${key}`, message: `Could not create it: ${error.message}` }]);
          }
        });
        pickers[key].wrap.append(create);
        createButtons.push(create);
      }
    }
    const ongoing = h("input", { type: "checkbox", checked: Boolean(page.ongoing()?.enabled) });
    const ongoingField = field("Ongoing sync", ongoing, { inline: true, hint: "Keep syncing new and changed contacts on a schedule after this first pass." });
    const summary = h("div", { class: "alert", role: "alert", hidden: true });
    const back = h("button", { type: "button" }, "Back");
    back.addEventListener("click", stepOne);
    const start = h("button", { type: "button", class: "primary" }, "Start Sync");
    start.addEventListener("click", async () => {
      start.disabled = true;
      summary.hidden = true;
      const section = {
        inbound_mapping: mapping(INBOUND, pickers),
        return_mapping: mapping(RETURN, pickers),
      };
      try {
        await page.save("sync", section, summary);
      } catch {
        start.disabled = false;
        return;
      }
      try {
        const body = { audience, ongoing: ongoing.checked };
        if (audience === "segment") body.segment_id = segmentId;
        const started = await api.post(`v1/campaigns/${encodeURIComponent(page.campaignId)}/syncs`, body, { signal });
        stepThree(started.sync_id);
        onStarted(started.sync_id);
      } catch (error) {
        start.disabled = false;
        if (error.code === "sync_in_progress") {
          summary.textContent = "A sync of this campaign is already running: its progress is shown on the campaign's page.";
        } else {
          summary.textContent = `The sync did not start: ${error.message}`;
        }
        summary.hidden = false;
      }
    });
    replace(body,
      h("p", { class: "step" }, "Step 2 of 2"),
      h("fieldset", {}, h("legend", {}, "Send to Referral Factory"),
        h("p", { class: "hint" }, "Which Intercom attribute holds each referrer's details."),
        INBOUND.map((k) => pickers[k].wrap)),
      h("fieldset", {}, h("legend", {}, "Write back to Intercom"),
        h("p", { class: "hint" }, "Where each contact's referral link and counts go, so you can use them in Intercom."),
        RETURN.map((k) => pickers[k].wrap)),
      ongoingField.wrap, summary,
      h("div", { class: "actions" }, back, start));
    pickers.first_name.control.focus();
  }

  function stepThree(syncId) {
    const done = h("button", { type: "button" }, "Back to the campaign");
    done.addEventListener("click", () => onClose());
    replace(body,
      h("p", { class: "step" }, "Syncing"),
      syncProgress(ctx, syncId, { onEnd: () => page.syncEnded() }),
      h("div", { class: "actions" }, done));
    heading.focus();
  }

  heading.setAttribute("tabindex", "-1");
  stepOne();
  return root;
}

function mapping(keys, pickers) {
  const result = {};
  for (const key of keys) if (pickers[key].control.value) result[key] = pickers[key].control.value;
  return result;
}

/** The ongoing sync on its own: what it covers and when it runs next, and a button to turn it off or on. */
export function ongoingPanel(ctx, page) {
  const { api, signal } = ctx;
  const box = h("div", { class: "ongoing" });
  function render() {
    const o = page.ongoing();
    const last = page.syncs()[0];
    const text = o && o.enabled
      ? `Ongoing sync is on: ${audienceText(o, page.segments())}, every ${Math.round((o.interval_s || 900) / 60)} minutes; next pass ${when(o.next_pass_at)}.`
      : "Ongoing sync is off: contacts sync only when you start a sync.";
    const message = h("span", { class: "inline-status", role: "status" });
    let button = null;
    if (o && o.enabled) {
      button = h("button", { type: "button" }, "Turn ongoing sync off");
      button.addEventListener("click", () => act(button, message, async () => {
        await api.del(`v1/campaigns/${encodeURIComponent(page.campaignId)}/syncs/ongoing`, { signal });
        return { ...o, enabled: false };
      }));
    } else if (last && page.settings()?.sync) {
      const chosen = o && o.audience ? o : last;
      button = h("button", { type: "button" }, "Turn ongoing sync on");
      button.addEventListener("click", () => act(button, message, () => {
        const body = { audience: chosen.audience };
        if (chosen.audience === "segment") body.segment_id = chosen.segment_id;
        return api.put(`v1/campaigns/${encodeURIComponent(page.campaignId)}/syncs/ongoing`, body, { signal });
      }));
    }
    replace(box, h("p", {}, text), button, message);
  }
  async function act(button, message, fn) {
    button.disabled = true;
    try {
      page.setOngoing(await fn());
      render();
      box.querySelector("button")?.focus();
    } catch (error) {
      button.disabled = false;
      message.textContent = `Could not change the ongoing sync: ${error.message}`;
    }
  }
  render();
  return { box, render };
}
