// Referrals: every referral the product knows, filtered by campaign, status, Intercom status or email,
// a page at a time. Two calls on arrival (the campaigns, for their names, and the first page), one per
// filter or "Load more"; "Retry" on a referral Intercom refused pushes it again.
import { field, h, replace, select, table, when } from "./dom.js";

const STATUSES = [["", "Any status"], ["pending", "Pending"], ["qualified", "Qualified"]];
const INTERCOM_STATUSES = [
  ["", "Any"],
  ["pending", "Pending"],
  ["created", "Created"],
  ["existing_skipped", "Existing contact, skipped"],
  ["existing_updated", "Existing contact, updated"],
  ["not_pushed", "Not pushed"],
  ["waiting_for_connection", "Waiting for the connection"],
  ["failed", "Failed"],
];
const INTERCOM_TEXT = Object.fromEntries(INTERCOM_STATUSES);
const RETRYABLE = new Set(["failed", "not_pushed", "waiting_for_connection"]);
const TYPE_TEXT = { person_invited: "Person Invited", person_referring: "Person Referring" };
const PAGE_SIZE = 50;

// Why a referral was not pushed, for the events whose kind says it all.
const REASONS = {
  settings_missing: "The campaign has no Intercom settings for this person yet.",
  action_none: "The campaign's action for this person is \"Do nothing\".",
};

/** Why a referral is where it is: its newest event (Intercom's error code and message for a failure). */
function reason(referral) {
  const events = referral.events || [];
  const last = events[events.length - 1];
  if (!last) return "";
  const d = last.details || {};
  const parts = typeof d === "string" ? [d] : [d.code, d.message || d.reason].filter(Boolean);
  if (parts.length) return parts.join(": ");
  return REASONS[last.kind] || String(last.kind || "").replaceAll("_", " ");
}

function history(referral) {
  const events = referral.events || [];
  if (!events.length) return "—";
  return h("details", {},
    h("summary", {}, `${events.length} event${events.length === 1 ? "" : "s"}`),
    h("ol", { class: "events" }, events.map((e) => h("li", {},
      h("span", { class: "meta" }, when(e.at)), " ", `${e.kind} via ${e.via}`,
      e.details && Object.keys(e.details).length ? h("span", { class: "meta" }, ` — ${detailText(e.details)}`) : null))));
}

function detailText(details) {
  if (typeof details !== "object") return String(details);
  return Object.entries(details).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

export async function renderReferrals(ctx) {
  const { api, signal, main } = ctx;
  const heading = h("h1", {}, "Referrals");
  const campaignSelect = select([["", "All campaigns"]], "");
  const filters = {
    campaign: field("Campaign", campaignSelect),
    status: field("Status", select(STATUSES, "")),
    intercom: field("Intercom status", select(INTERCOM_STATUSES, "")),
    email: field("Email address", h("input", { type: "email", autocomplete: "off" })),
  };
  const apply = h("button", { type: "submit" }, "Filter");
  const form = h("form", { class: "filters", "aria-label": "Filter referrals" },
    Object.values(filters).map((f) => f.wrap), h("div", { class: "actions" }, apply));
  const results = h("div", {});
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const status = h("p", { class: "inline-status", role: "status" });
  replace(main, heading, form, status, results, more);
  ctx.focusHeading(heading);

  const campaigns = (await api.get("v1/campaigns", { signal })).data;
  const names = new Map(campaigns.map((c) => [String(c.id), c.name || `Campaign ${c.id}`]));
  replace(campaignSelect, [["", "All campaigns"], ...campaigns.map((c) => [String(c.id), names.get(String(c.id))])]
    .map(([v, t]) => h("option", { value: v }, t)));

  let rows = [];
  let cursor = null;
  let body = null;

  function query() {
    return {
      campaign_id: filters.campaign.control.value,
      status: filters.status.control.value,
      intercom_status: filters.intercom.control.value,
      email: filters.email.control.value.trim(),
      limit: PAGE_SIZE,
      cursor: cursor || undefined,
    };
  }

  function row(referral) {
    const retryable = RETRYABLE.has(referral.intercom_status);
    const why = retryable ? reason(referral) : "";
    const outcome = h("span", { class: "inline-status", role: "status" });
    let retry = null;
    if (retryable) {
      retry = h("button", { type: "button", class: "small" }, "Retry");
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        outcome.textContent = "Retrying…";
        try {
          await api.post(`v1/referrals/${encodeURIComponent(referral.rf_user_id)}/retry`, {},
            { query: { campaign_id: referral.campaign_id }, signal });
          outcome.textContent = "Queued: it is pushed to Intercom again with the campaign's current settings.";
        } catch (error) {
          retry.disabled = false;
          outcome.textContent = `Not retried: ${error.message}`;
        }
      });
    }
    return h("tr", {},
      h("td", {}, referral.email || "—"),
      h("td", {}, TYPE_TEXT[referral.type] || referral.type || "—"),
      h("td", {}, names.get(String(referral.campaign_id)) || String(referral.campaign_id ?? "—")),
      h("td", {}, referral.status === "qualified" ? `Qualified ${when(referral.qualified_at)}` : "Pending"),
      h("td", {},
        INTERCOM_TEXT[referral.intercom_status] || referral.intercom_status || "—",
        why ? h("p", { class: "reason" }, why) : null, retry, outcome),
      h("td", {}, referral.sale_value === null || referral.sale_value === undefined ? "—" : String(referral.sale_value)),
      h("td", {}, history(referral)));
  }

  async function load(reset) {
    if (reset) { rows = []; cursor = null; }
    apply.disabled = true;
    more.disabled = true;
    status.textContent = "Loading…";
    try {
      const answer = await api.get("v1/referrals", { query: query(), signal });
      rows = rows.concat(answer.data);
      cursor = answer.next_cursor;
      if (reset || !body) {
        body = null;
        if (!rows.length) {
          replace(results, h("p", {}, "No referral matches."));
        } else {
          const wrap = table("Referrals", ["Email", "Type", "Campaign", "Status", "Intercom", "Sale value", "History"], rows.map(row));
          body = wrap.querySelector("tbody");
          replace(results, wrap);
        }
      } else {
        for (const r of answer.data) body.append(row(r));
      }
      more.hidden = !cursor;
      status.textContent = `${rows.length} referral${rows.length === 1 ? "" : "s"}${cursor ? " (more to load)" : ""}.`;
    } catch (error) {
      if (signal.aborted) return;
      status.textContent = `Could not load the referrals: ${error.message}`;
    } finally {
      apply.disabled = false;
      more.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  await load(true);
}
