// Campaigns: each of the account's Referral Factory campaigns, a link to its page, and its Intercom
// status. One call on arrival (GET /v1/campaigns); "Refresh attributes" makes two more.
import { h, replace, table } from "./dom.js";

export function integrationStatus(campaign) {
  const intercom = campaign.intercom || {};
  if (!intercom.configured) return "Not set up";
  return intercom.ongoing_sync ? "Set up · ongoing sync on" : "Set up";
}

/**
 * The button that reloads Intercom's attributes and segments (`?refresh=true`); `onDone` gets both lists.
 * `query()` names the workspace (`{workspace_id}`) when the account has several.
 */
export function refreshAttributesButton(ctx, onDone, query = () => ({})) {
  const { api, signal } = ctx;
  const status = h("span", { class: "inline-status", role: "status" });
  const button = h("button", { type: "button" }, "Refresh attributes");
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Reloading from Intercom…";
    try {
      const [attributes, segments] = await Promise.all([
        api.get("v1/intercom/attributes", { query: { refresh: true, ...query() }, signal }),
        api.get("v1/intercom/segments", { query: { refresh: true, ...query() }, signal }),
      ]);
      status.textContent = `${attributes.data.length} attributes and ${segments.data.length} segments reloaded from Intercom.`;
      if (onDone) onDone(attributes.data, segments.data);
    } catch (error) {
      status.textContent = error.code === "not_connected"
        ? "Connect Intercom first (Integrations)."
        : error.details.some((d) => d.field === "workspace_id")
          ? "This account has several Intercom workspaces: refresh them from a campaign's page."
          : `Could not reload: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "toolbar" }, button, status);
}

export async function renderCampaigns(ctx) {
  const { api, signal, main } = ctx;
  const heading = h("h1", {}, "Campaigns");
  const body = h("div", {}, h("p", { class: "hint" }, "Loading campaigns from Referral Factory…"));
  replace(main, heading,
    h("p", { class: "hint" }, "Each campaign is set up on its own: which contacts to sync, what happens when someone joins, and when a referral qualifies."),
    refreshAttributesButton(ctx), body);
  ctx.focusHeading(heading);
  const campaigns = (await api.get("v1/campaigns", { signal })).data;
  if (!campaigns.length) {
    replace(body, h("p", {}, "Referral Factory has no campaigns for this account yet."));
    return;
  }
  const rows = campaigns.map((c) => h("tr", {},
    h("th", { scope: "row" }, h("a", { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name || `Campaign ${c.id}`)),
    h("td", {}, c.status || "—"),
    h("td", {}, integrationStatus(c))));
  replace(body, table("Your Referral Factory campaigns", ["Campaign", "Referral Factory", "Intercom"], rows));
}
