// Intercom's consent page sends the pop-up back here (the `return_url` of POST /v1/intercom/connect).
// Tell the console that opened it, then close; opened without a pop-up, go back to the console.
const status = new URLSearchParams(window.location.search).get("status") || "unknown";
const opener = window.opener;
if (opener && !opener.closed) {
  try {
    opener.postMessage({ type: "intercom-connect", status }, window.location.origin);
  } finally {
    window.close();
  }
} else {
  window.location.replace("../console#/integrations");
}
