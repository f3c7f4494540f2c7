// The first-admin setup page. The token arrives in the URL fragment, which
// browsers never send to the server, so it stays out of every log.
"use strict";

const form = document.getElementById("setup");
const status = document.getElementById("status");
const fields = ["token", "username", "password"];

const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  document.getElementById("token").value = fromHash;
  history.replaceState(null, "", location.pathname);
}

function clearErrors() {
  for (const f of fields) document.getElementById(`${f}-error`).textContent = "";
  status.textContent = "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const body = Object.fromEntries(fields.map((f) => [f, document.getElementById(f).value]));
  const button = document.getElementById("submit");
  button.disabled = true;
  status.textContent = "Creating…";
  try {
    const response = await fetch("/api/v1/setup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status === 201) {
      status.textContent = "Done. The setup token is spent; sign in with the new admin.";
      form.reset();
      return;
    }
    const problem = await response.json().catch(() => ({}));
    let shown = false;
    for (const e of problem.errors || []) {
      const slot = document.getElementById(`${e.field}-error`);
      if (slot) { slot.textContent = e.message; shown = true; }
    }
    status.textContent = shown ? "Please fix the fields above." : (problem.detail || `Failed (${response.status}).`);
  } catch (err) {
    status.textContent = `Could not reach the server: ${err}`;
  } finally {
    button.disabled = false;
  }
});
