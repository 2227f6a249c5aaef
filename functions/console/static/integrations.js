// Integrations: the account's Intercom workspaces, each with its own state and action: "Connect" (a
// new workspace, through Intercom's consent page in a pop-up), "Disconnect" (confirmed in a dialog) for
// a connected one, "Reconnect" for one whose access was revoked or removed. One call on arrival:
// GET /v1/intercom/connections.
import { url } from "./api.js";
import { h, replace, when, uid } from "./dom.js";

const STATUS_TEXT = { connected: "Connected", revoked: "Access revoked by Intercom: connect again", disconnected: "Access removed" };
const POLL_POPUP_MS = 400;

/**
 * The account's workspaces: `workspaces` those in use (connected, or revoked by Intercom), `removed` those
 * disconnected on purpose, `several` whether more than one is in use (the API then needs `workspace_id`).
 */
export async function loadWorkspaces(api, signal) {
  const all = (await api.get("v1/intercom/connections", { signal })).data;
  const workspaces = all.filter((w) => w.status !== "disconnected");
  return { several: workspaces.length > 1, workspaces, removed: all.filter((w) => w.status === "disconnected") };
}

export async function renderIntegrations(ctx) {
  const { api, signal, main } = ctx;
  const heading = h("h1", {}, "Integrations");
  const list = h("ul", { class: "workspaces", "aria-labelledby": "intercom-title" });
  const removedTitle = uid("removed");
  const removedList = h("ul", { class: "workspaces", "aria-labelledby": removedTitle });
  const removed = h("div", { hidden: true }, h("h3", { id: removedTitle }, "Removed workspaces"), removedList);
  const message = h("p", { class: "notice", role: "status" });
  const connectButton = h("button", { type: "button", class: "primary" }, "Connect");
  const confirm = disconnectDialog();
  replace(main,
    heading,
    h("section", { class: "card", "aria-labelledby": "intercom-title" },
      h("h2", { id: "intercom-title" }, "Intercom"),
      h("p", { class: "hint" },
        "Connect your Intercom workspace: Intercom's consent page opens in a pop-up window. From then on contacts can be synced, "
        + "new referrals are created in Intercom, and referrals qualify when an Intercom attribute changes. "
        + "Connect another workspace the same way: each campaign then says which workspace it uses. "
        + "Disconnecting a workspace stops all of this for its campaigns; data synced before stays in both systems."),
      list, message, connectButton, removed),
    confirm.dialog);
  ctx.focusHeading(heading);

  let state = { several: false, workspaces: [], removed: [] };
  async function refresh() {
    state = await loadWorkspaces(api, signal);
    const items = state.workspaces.map((w) => workspaceItem(w));
    replace(list, items.length ? items : h("li", { class: "empty" }, "No Intercom workspace yet."));
    replace(removedList, state.removed.map((w) => workspaceItem(w)));
    removed.hidden = !state.removed.length;
    return state;
  }

  function workspaceItem(w) {
    const nameId = uid("ws");
    const campaigns = (w.campaign_ids || []).length;
    const action = w.status === "connected"
      ? h("button", { type: "button", class: "danger", "aria-describedby": nameId }, "Disconnect")
      : h("button", { type: "button", "aria-describedby": nameId }, "Reconnect");
    action.addEventListener("click", async () => {
      if (w.status !== "connected") {
        await connectInPopup(action);
        return;
      }
      if (!(await confirm.ask(w.workspace_name || w.workspace_id))) return;
      action.disabled = true;
      try {
        await api.del(`v1/intercom/connections/${encodeURIComponent(w.workspace_id)}`, { signal });
        await refresh();
        // The workspace's name and the word for its state appear once on the page: in its entry.
        message.textContent = "Access removed. What was synced before stays in both systems.";
        connectButton.focus();
      } catch (error) {
        action.disabled = false;
        message.textContent = `Could not disconnect: ${error.message}`;
      }
    });
    return h("li", { class: `workspace status-${w.status}` },
      h("div", {},
        h("strong", { id: nameId }, w.workspace_name || w.workspace_id || "Intercom workspace"),
        " ",
        h("span", { class: `badge ${w.status}` }, STATUS_TEXT[w.status] || w.status)),
      h("p", { class: "meta" },
        [w.workspace_id && `Workspace ${w.workspace_id}`, w.region && `region ${w.region}`, w.connected_at && `since ${when(w.connected_at)}`,
          campaigns && `${campaigns} campaign${campaigns === 1 ? "" : "s"}`]
          .filter(Boolean).join(" · ")),
      action);
  }

  /** Intercom's consent page in a pop-up (it picks the workspace); the list is read again once it closes. */
  async function connectInPopup(button) {
    // Opened now, while the click still counts as the person's (a pop-up opened after an await may be
    // refused), and sent to Intercom's page once the API has answered.
    const popup = window.open("", "intercom-consent", "popup,width=620,height=760");
    button.disabled = true;
    message.textContent = "Opening Intercom's consent page…";
    let authorizeUrl;
    try {
      const answer = await api.post("v1/intercom/connect", { return_url: url("console/connected").href }, { signal });
      authorizeUrl = answer.authorize_url;
    } catch (error) {
      if (popup) popup.close();
      button.disabled = false;
      message.textContent = `Could not start connecting: ${error.message}`;
      return;
    }
    if (!popup) {
      // No pop-up allowed: go there in this window; the consent page comes back to the console.
      window.location.assign(authorizeUrl);
      return;
    }
    popup.location.href = authorizeUrl;
    message.textContent = "Waiting for you to authorize access in Intercom's window…";
    await popupClosed(popup, signal);
    button.disabled = false;
    if (signal.aborted) return;
    const before = new Map(state.workspaces.map((w) => [w.workspace_id, w.connected_at]));
    const { workspaces } = await refresh();
    const connected = workspaces.filter((w) => w.status === "connected");
    const fresh = connected.find((w) => before.get(w.workspace_id) !== w.connected_at);
    if (fresh) {
      message.textContent = "Access granted.";
    } else {
      message.textContent = "Nothing changed: the window was closed before access was authorized.";
    }
    connectButton.focus();
  }

  connectButton.addEventListener("click", () => connectInPopup(connectButton));

  await refresh();
}

/** Resolves when `popup` has closed (it closes itself on the console's return page) or the view is left. */
function popupClosed(popup, signal) {
  return new Promise((resolve) => {
    const done = () => {
      window.clearInterval(timer);
      window.removeEventListener("message", onMessage);
      resolve();
    };
    const onMessage = (event) => {
      if (event.origin !== window.location.origin || event.source !== popup) return;
      if (event.data && event.data.type === "intercom-connect") window.setTimeout(done, 0);
    };
    const timer = window.setInterval(() => { if (popup.closed || signal.aborted) done(); }, POLL_POPUP_MS);
    window.addEventListener("message", onMessage);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The confirmation dialog: `ask(name)` resolves true when the second "Disconnect" is pressed. */
function disconnectDialog() {
  const titleId = uid("dlg");
  const text = h("p", {});
  const cancel = h("button", { type: "button", value: "cancel" }, "Cancel");
  const confirm = h("button", { type: "button", class: "danger", value: "confirm" }, "Disconnect");
  const dialog = h("dialog", { "aria-labelledby": titleId, class: "dialog" },
    h("h2", { id: titleId }, "Disconnect Intercom?"), text,
    h("div", { class: "actions" }, cancel, confirm));
  let answer = null;
  cancel.addEventListener("click", () => dialog.close("cancel"));
  confirm.addEventListener("click", () => dialog.close("confirm"));
  dialog.addEventListener("close", () => { if (answer) answer(dialog.returnValue === "confirm"); answer = null; });
  return {
    dialog,
    ask(name) {
      text.textContent = `Disconnect ${name}? Ongoing syncs stop and no new data goes to this workspace. `
        + "Contacts and referrals synced before stay in Intercom and Referral Factory.";
      dialog.returnValue = "";
      dialog.showModal();
      cancel.focus();
      return new Promise((resolve) => { answer = resolve; });
    },
  };
}
