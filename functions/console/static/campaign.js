// A campaign's page: its Intercom workspace (a choice when the account has several), its sync (the
// wizard, a running sync's progress, the history, the ongoing sync) and its "Person Invited", "Person
// Referring" and "Sale value" sections. Six calls on arrival, side by side: the campaigns, the
// campaign's settings, attributes, segments, syncs and ongoing sync; with several workspaces, three
// more (the workspaces, then the campaign's workspace's attributes and segments).
import { field, h, replace, select, setFieldError, uid } from "./dom.js";
import { Attributes, ErrorTargets } from "./fields.js";
import { integrationStatus, refreshAttributesButton } from "./campaigns.js";
import { loadWorkspaces } from "./integrations.js";
import { historyTable, ongoingPanel, syncProgress, syncWizard } from "./sync.js";
import { personSection, saleValueSection } from "./sections.js";

const RUNNING = new Set(["queued", "running"]);
const SECTIONS = ["sync", "person_invited", "person_referring", "commission"];

/** The answer, or `fallback` when the API says one of `codes` (a 404 settings_missing, say); `onRefused` sees why. */
async function orWhen(promise, codes, fallback, onRefused) {
  try {
    return await promise;
  } catch (error) {
    if (!codes.includes(error.code)) throw error;
    if (onRefused) onRefused(error);
    return fallback;
  }
}

const DATA_TYPES = [["string", "Text"], ["integer", "Whole number"], ["float", "Decimal number"], ["boolean", "Yes or no"], ["options", "List"]];

/** A custom attribute created in Intercom from here, for a field no existing attribute fits. */
function newAttributeForm(ctx, page) {
  const name = field("Attribute name", h("input", { type: "text", autocomplete: "off", spellcheck: "false" }),
    { hint: "Letters, digits, _ and -; Intercom shows it under this name." });
  const type = field("Type", select(DATA_TYPES, "string"));
  const options = field("List options", h("input", { type: "text" }), { hint: "For a list: at least two, separated by commas." });
  const status = h("span", { class: "inline-status", role: "status" });
  const create = h("button", { type: "button" }, "Create attribute");
  const showOptions = () => { options.wrap.hidden = type.control.value !== "options"; };
  type.control.addEventListener("change", showOptions);
  showOptions();
  create.addEventListener("click", async () => {
    for (const f of [name, type, options]) setFieldError(f, null);
    create.disabled = true;
    const body = { name: name.control.value.trim(), data_type: type.control.value };
    if (body.data_type === "options") body.options = options.control.value.split(",").map((o) => o.trim()).filter(Boolean);
    try {
      const made = await ctx.api.post("v1/intercom/attributes", body, { query: page.workspaceQuery(), signal: ctx.signal });
      page.attributes.add("contact", made);
      status.textContent = `Created ${made.label || made.full_name}: it can be chosen in every field now.`;
      name.control.value = "";
    } catch (error) {
      const fields = { name, data_type: type, options };
      const details = error.status === 422 ? error.details : [];
      for (const d of details) setFieldError(fields[d.field] || name, d.message);
      status.textContent = details.length ? "Not created: see the fields above." : `Not created: ${error.message}`;
    } finally {
      create.disabled = false;
    }
  });
  return h("details", { class: "card" }, h("summary", {}, "Create an Intercom attribute"),
    name.wrap, type.wrap, options.wrap, h("div", { class: "actions" }, create, status));
}

export async function renderCampaign(ctx) {
  const { api, signal, main, params } = ctx;
  const [campaignId] = params;
  const id = encodeURIComponent(campaignId);
  const heading = h("h1", {}, `Campaign ${campaignId}`);
  // No link back to the list here: the navigation's "Campaigns" is that link, and a second one of the
  // same name would make "the Campaigns link" ambiguous.
  replace(main, heading,
    h("p", { class: "hint" }, "Loading the campaign…"));
  ctx.focusHeading(heading);

  const notConnected = ["not_connected", "connection_revoked", "several_workspaces", "validation_failed"];
  let unavailable = null; // why Intercom's attributes could not be listed
  let [campaigns, settings, attributes, segments, syncs, ongoing] = await Promise.all([
    api.get("v1/campaigns", { signal }),
    orWhen(api.get(`v1/campaigns/${id}/intercom`, { signal }), ["settings_missing"], null),
    orWhen(api.get("v1/intercom/attributes", { signal }), notConnected, null, (e) => { unavailable = e; }),
    orWhen(api.get("v1/intercom/segments", { signal }), notConnected, null),
    api.get(`v1/campaigns/${id}/syncs`, { query: { limit: 10 }, signal }),
    orWhen(api.get(`v1/campaigns/${id}/syncs/ongoing`, { signal }), ["not_found"], null),
  ]);
  const campaign = campaigns.data.find((c) => String(c.id) === String(campaignId));
  // Several workspaces: the lists need one named, the campaign's (or, not set up yet, the first connected).
  let workspaces = [];
  let workspaceId = null;
  if (unavailable && unavailable.details.some((d) => d.field === "workspace_id")) {
    workspaces = (await loadWorkspaces(api, signal)).workspaces;
    const bound = settings?.workspace_id || campaign?.intercom?.workspace_id;
    const usable = workspaces.find((w) => w.workspace_id === bound) || workspaces.find((w) => w.status === "connected") || workspaces[0];
    workspaceId = usable ? usable.workspace_id : null;
    if (workspaceId) {
      unavailable = null;
      [attributes, segments] = await Promise.all([
        orWhen(api.get("v1/intercom/attributes", { query: { workspace_id: workspaceId }, signal }), notConnected, null, (e) => { unavailable = e; }),
        orWhen(api.get("v1/intercom/segments", { query: { workspace_id: workspaceId }, signal }), notConnected, null),
      ]);
    }
  }
  if (!campaign) {
    // No link back to the list here: the navigation's "Campaigns" is that link, and a second one of the
  // same name would make "the Campaigns link" ambiguous.
  replace(main, heading,
      h("p", { class: "alert", role: "alert" }, `Referral Factory has no campaign ${campaignId} for this account.`));
    return;
  }
  heading.textContent = campaign.name || `Campaign ${campaign.id}`;
  const metaText = () => `Referral Factory: ${campaign.status || "—"} · Intercom: ${integrationStatus(campaign)}`;
  const meta = h("p", { class: "meta" }, metaText());

  const state = {
    settings,
    segments: segments ? segments.data : [],
    syncs: syncs.data,
    ongoing,
    companyAttributes: null,
    workspaceId,
  };
  const page = {
    campaignId,
    /** `{workspace_id}` for the attribute and segment routes when the account has several workspaces. */
    workspaceQuery: () => (state.workspaceId ? { workspace_id: state.workspaceId } : {}),
    attributes: new Attributes({ contact: attributes ? attributes.data : [] }),
    errors: new ErrorTargets(),
    settings: () => state.settings,
    segments: () => state.segments,
    syncs: () => state.syncs,
    ongoing: () => state.ongoing,
    setOngoing(value) { state.ongoing = value; },
    /** Save one section: PUT the whole document with `section` replaced; a refusal shows each detail beside its field. */
    async save(name, section, summary) {
      page.errors.clear();
      summary.hidden = true;
      const doc = {};
      for (const key of SECTIONS) doc[key] = state.settings?.[key] ?? null;
      for (const [key, value] of Object.entries(state.settings || {})) if (!(key in doc)) doc[key] = value;
      doc[name] = section;
      // The workspace shown is the one saved: chosen above with several, the account's only one else.
      if (state.workspaceId) doc.workspace_id = state.workspaceId;
      else delete doc.workspace_id;
      try {
        state.settings = await api.put(`v1/campaigns/${id}/intercom`, doc, { signal });
      } catch (error) {
        showRefusal(error, doc, summary, name);
        throw error;
      }
      campaign.intercom = { ...(campaign.intercom || {}), configured: true, workspace_id: state.settings.workspace_id };
      meta.textContent = metaText();
      return state.settings;
    },
    async syncEnded() {
      await Promise.all([reloadHistory(), reloadOngoing()]);
    },
    async loadCompanyAttributes(objectField) {
      if (state.companyAttributes) return;
      try {
        state.companyAttributes = (await api.get("v1/intercom/attributes", { query: { model: "company", ...page.workspaceQuery() }, signal })).data;
        page.attributes.set("company", state.companyAttributes);
      } catch (error) {
        page.errors.show([{ field: objectField.path || "", message: `Intercom's company attributes could not be listed: ${error.message}` }]);
        objectField.control.value = "contact";
      }
    },
  };

  function showRefusal(error, doc, summary, name) {
    const unclaimed = error.status === 422 ? page.errors.show(error.details) : [];
    const lines = error.status === 422 ? unclaimed.map((d) => `${d.field}: ${d.message}`) : [error.message];
    const missing = error.status === 422 && error.details.some((d) => /has no attribute/.test(d.message));
    replace(summary,
      h("p", {}, error.status === 422 ? "Not saved: correct the fields marked below." : `Not saved: ${error.message}`),
      lines.length && error.status === 422 ? h("ul", {}, lines.map((l) => h("li", {}, l))) : null,
      missing ? createMissingButton(doc, summary, name) : null);
    summary.hidden = false;
  }

  // Instead of a dead end: an attribute the settings name that Intercom lacks can be created here.
  function createMissingButton(doc, summary, name) {
    const button = h("button", { type: "button" }, "Create missing attributes");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const made = await api.post(`v1/campaigns/${id}/intercom/setup`, doc, { signal });
        const fresh = await api.get("v1/intercom/attributes", { query: { refresh: true, ...page.workspaceQuery() }, signal });
        page.attributes.set("contact", fresh.data);
        state.settings = await api.put(`v1/campaigns/${id}/intercom`, doc, { signal });
        page.errors.clear();
        replace(summary, h("p", {}, `Created ${made.created.join(", ") || "nothing"} in Intercom, and saved.`));
      } catch (error) {
        showRefusal(error, doc, summary, name);
      }
    });
    return button;
  }

  const overview = h("div", { class: "overview" });
  const wizardSlot = h("div", {});
  const historySlot = h("div", {});
  const runningSlot = h("div", {});
  const ongoingBox = ongoingPanel(ctx, page);
  const refresh = refreshAttributesButton(ctx, (attrs, segs) => {
    page.attributes.set("contact", attrs);
    state.segments = segs;
  }, () => page.workspaceQuery());

  // With several workspaces: which one the campaign uses. Choosing another shows its attributes and
  // segments; saving a section binds the campaign to it.
  function workspaceChoice() {
    if (workspaces.length < 2) return null;
    const choice = field("Intercom workspace", select(
      workspaces.map((w) => [w.workspace_id, `${w.workspace_name || w.workspace_id}${w.status === "connected" ? "" : " (access revoked)"}`]),
      state.workspaceId), { hint: "This campaign's signups, syncs and qualification use this workspace. Saving a section saves the choice." });
    const status = h("span", { class: "inline-status", role: "status" });
    choice.control.addEventListener("change", async () => {
      const chosen = choice.control.value;
      choice.control.disabled = true;
      status.textContent = "Loading the workspace's attributes…";
      try {
        const query = { workspace_id: chosen, refresh: true };
        const [attrs, segs] = await Promise.all([
          api.get("v1/intercom/attributes", { query, signal }),
          api.get("v1/intercom/segments", { query, signal }),
        ]);
        state.workspaceId = chosen;
        state.companyAttributes = null;
        page.attributes.set("contact", attrs.data);
        state.segments = segs.data;
        status.textContent = `${attrs.data.length} attributes and ${segs.data.length} segments of this workspace; save a section to move the campaign here.`;
      } catch (error) {
        choice.control.value = state.workspaceId;
        status.textContent = `Could not load that workspace: ${error.message}`;
      } finally {
        choice.control.disabled = false;
      }
    });
    choice.wrap.append(status);
    return h("section", { class: "card" }, choice.wrap);
  }

  async function reloadHistory() {
    state.syncs = (await api.get(`v1/campaigns/${id}/syncs`, { query: { limit: 10 }, signal })).data;
    replace(historySlot, historyTable(state.syncs, state.segments));
    ongoingBox.render();
  }
  async function reloadOngoing() {
    state.ongoing = await orWhen(api.get(`v1/campaigns/${id}/syncs/ongoing`, { signal }), ["not_found"], null);
    ongoingBox.render();
  }
  function showRunning() {
    const running = state.syncs.find((s) => RUNNING.has(s.status));
    replace(runningSlot, running ? syncProgress(ctx, running.sync_id, { onEnd: () => page.syncEnded() }) : null);
  }

  const syncTitle = uid("sync");
  const openWizard = h("button", { type: "button", class: "primary" }, "Sync Your Contacts");
  openWizard.addEventListener("click", () => {
    overview.hidden = true;
    replace(wizardSlot, syncWizard(ctx, page, {
      onClose() {
        replace(wizardSlot);
        overview.hidden = false;
        showRunning();
        openWizard.focus();
      },
      onStarted() {
        // The wizard's fields are gone (its last step shows the progress alone), so the sections come
        // back at once: no control is named twice, and the rest of the campaign stays at hand.
        replace(runningSlot);
        overview.hidden = false;
        reloadHistory();
      },
    }));
  });
  if (!attributes) openWizard.disabled = true;

  replace(historySlot, historyTable(state.syncs, state.segments));
  showRunning();
  replace(overview,
    attributes ? null : h("p", { class: "alert", role: "alert" },
      unavailable && unavailable.code !== "not_connected" ? `${unavailable.message} ` : "Intercom is not connected. ",
      "Connect a workspace (under Integrations, above) to sync contacts and choose attributes."),
    h("section", { class: "card", "aria-labelledby": syncTitle },
      h("h2", { id: syncTitle }, "Contact sync"),
      h("p", { class: "hint" }, "Import your Intercom contacts as referrers: each gets a referral link, written back to Intercom with their referral counts."),
      openWizard, runningSlot, ongoingBox.box, historySlot),
    attributes ? [personSection(page, "person_invited"), personSection(page, "person_referring"), saleValueSection(page),
      newAttributeForm(ctx, page)] : null);

  replace(main,
    heading,
    meta,
    workspaceChoice(),
    refresh, wizardSlot, overview);
  ctx.focusHeading(heading);
}
