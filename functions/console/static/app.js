// The console: sign-in, navigation between the guide's views, and the one place views are rendered.
import { client, session } from "./api.js";
import { h, replace } from "./dom.js";
import { renderIntegrations } from "./integrations.js";
import { renderCampaigns } from "./campaigns.js";
import { renderCampaign } from "./campaign.js";
import { renderReferrals } from "./referrals.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const announcer = document.getElementById("announcer");

const ROUTES = [
  [/^#\/integrations$/, "integrations", () => renderIntegrations],
  [/^#\/campaigns$/, "campaigns", () => renderCampaigns],
  [/^#\/campaigns\/([^/]+)$/, "campaigns", () => renderCampaign],
  [/^#\/referrals$/, "referrals", () => renderReferrals],
];
const HOME = "#/integrations";

let current = null; // the AbortController of the view on screen: leaving it cancels its calls and timers
let signInMessage = null; // why the person is asked to sign in again, shown once on the form

/** Say `text` to a screen reader without moving focus. */
function announce(text) {
  announcer.textContent = "";
  window.setTimeout(() => { announcer.textContent = text; }, 50);
}

function signedOut(message) {
  session.signOut();
  signInMessage = message;
  render();
}

const api = client(() => signedOut("The API did not accept the key: sign in again."));

/** `/console#key=<key>` signs in and forgets the fragment, so the key stays out of history and bookmarks. */
function keyFromFragment() {
  const hash = window.location.hash;
  if (!hash.startsWith("#key=")) return;
  const key = decodeURIComponent(hash.slice("#key=".length)).trim();
  if (key) session.signIn(key);
  window.history.replaceState(null, "", window.location.pathname + window.location.search + HOME);
}

function signInForm(message) {
  const input = h("input", { type: "text", id: "api-key", name: "api-key", autocomplete: "off",
    spellcheck: "false", autocapitalize: "off", required: true, "aria-describedby": "api-key-hint" });
  const error = h("p", { class: "field-error", id: "sign-in-error", role: "alert", hidden: !message }, message || "");
  const form = h("form", { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", { id: "api-key-hint", class: "hint" },
      "The account API key from POST /admin/accounts (or a rotated one). It is kept in this tab only, until you sign out or close it."),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "Account API key"), input),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      error.textContent = "Enter the account API key.";
      error.hidden = false;
      input.focus();
      return;
    }
    session.signIn(key);
    if (!ROUTES.some(([pattern]) => pattern.test(window.location.hash))) window.location.hash = HOME;
    render();
  });
  return { form, input };
}

function render() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  if (!session.key()) {
    nav.hidden = true;
    const { form, input } = signInForm(signInMessage);
    signInMessage = null;
    replace(main, form);
    input.focus();
    return;
  }
  nav.hidden = false;
  const route = ROUTES.find(([pattern]) => pattern.test(window.location.hash));
  if (!route) {
    window.location.replace(HOME);
    return;
  }
  const [pattern, section, view] = route;
  const params = window.location.hash.match(pattern).slice(1).map(decodeURIComponent);
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const container = h("div", { class: "view" });
  replace(main, container);
  const context = { api, signal, announce, params, main: container, focusHeading };
  view()(context).catch((error) => {
    if (signal.aborted || error.name === "AbortError") return;
    if (error.status === 401) return;
    container.append(h("p", { class: "alert", role: "alert" }, `Something went wrong: ${error.message}`));
  });
}

/** After navigation, put keyboard focus on the view's heading so the next Tab starts from there. */
function focusHeading(heading) {
  heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: false });
}

document.getElementById("sign-out").addEventListener("click", () => {
  signedOut("Signed out.");
});
window.addEventListener("hashchange", () => {
  if (window.location.hash.startsWith("#key=")) keyFromFragment();
  render();
});

keyFromFragment();
render();
