// Integrations: the account's Intercom workspaces, "Connect" through Intercom's consent page in a
// pop-up, and "Disconnect" confirmed in a dialog. One call on arrival: GET /v1/intercom/connection
// (and GET /v1/intercom/connections when the account has several workspaces).
import { url } from "./api.js";
import { h, replace, when, uid } from "./dom.js";

const STATUS_TEXT = { connected: "Connected", revoked: "Access revoked by Intercom: connect again", disconnected: "Disconnected" };
const POLL_POPUP_MS = 400;

/** The account's workspaces, whatever their number: one from /connection, several from /connections. */
export async function loadWorkspaces(api, signal) {
  try {
    const one = await api.get("v1/intercom/connection", { signal });
    return { several: false, workspaces: one.status === "disconnected" ? [] : [one] };
  } catch (error) {
    if (error.code !== "several_workspaces") throw error;
    const all = await api.get("v1/intercom/connections", { signal });
    return { several: true, workspaces: all.data.filter((w) => w.status !== "disconnected") };
  }
}

export async function renderIntegrations(ctx) {
  const { api, signal, main } = ctx;
  const heading = h("h1", {}, "Integrations");
  const list = h("ul", { class: "workspaces", "aria-labelledby": "intercom-title" });
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
        + "Disconnecting stops all of this; data synced before stays in both systems."),
      list, message, connectButton),
    confirm.dialog);
  ctx.focusHeading(heading);

  let state = { several: false, workspaces: [] };
  async function refresh() {
    state = await loadWorkspaces(api, signal);
    const items = state.workspaces.map((w) => workspaceItem(w));
    replace(list, items.length ? items : h("li", { class: "empty" }, "No Intercom workspace yet."));
    return state;
  }

  function workspaceItem(w) {
    const nameId = uid("ws");
    const disconnect = h("button", { type: "button", class: "danger", "aria-describedby": nameId }, "Disconnect");
    disconnect.addEventListener("click", async () => {
      if (!(await confirm.ask(w.workspace_name || w.workspace_id))) return;
      disconnect.disabled = true;
      try {
        if (state.several) await api.del(`v1/intercom/connections/${encodeURIComponent(w.workspace_id)}`, { signal });
        else await api.del("v1/intercom/connection", { signal });
        await refresh();
        // The workspace's name and the word for its state appear once on the page: in its entry.
        message.textContent = "Access removed. What was synced before stays in both systems.";
        connectButton.focus();
      } catch (error) {
        disconnect.disabled = false;
        message.textContent = `Could not disconnect: ${error.message}`;
      }
    });
    return h("li", { class: `workspace status-${w.status}` },
      h("div", {},
        h("strong", { id: nameId }, w.workspace_name || w.workspace_id || "Intercom workspace"),
        " ",
        h("span", { class: `badge ${w.status}` }, STATUS_TEXT[w.status] || w.status)),
      h("p", { class: "meta" },
        [w.workspace_id && `Workspace ${w.workspace_id}`, w.region && `region ${w.region}`, w.connected_at && `since ${when(w.connected_at)}`]
          .filter(Boolean).join(" · ")),
      disconnect);
  }

  connectButton.addEventListener("click", async () => {
    // Opened now, while the click still counts as the person's (a pop-up opened after an await may be
    // refused), and sent to Intercom's page once the API has answered.
    const popup = window.open("", "intercom-consent", "popup,width=620,height=760");
    connectButton.disabled = true;
    message.textContent = "Opening Intercom's consent page…";
    let authorizeUrl;
    try {
      const answer = await api.post("v1/intercom/connect", { return_url: url("console/connected").href }, { signal });
      authorizeUrl = answer.authorize_url;
    } catch (error) {
      if (popup) popup.close();
      connectButton.disabled = false;
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
    connectButton.disabled = false;
    if (signal.aborted) return;
    const before = new Set(state.workspaces.filter((w) => w.status === "connected").map((w) => w.workspace_id));
    const { workspaces } = await refresh();
    const connected = workspaces.filter((w) => w.status === "connected");
    const fresh = connected.find((w) => !before.has(w.workspace_id)) || connected[0];
    if (fresh) {
      message.textContent = "Access granted.";
    } else {
      message.textContent = "Nothing changed: the window was closed before access was authorized.";
    }
    connectButton.focus();
  });

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
