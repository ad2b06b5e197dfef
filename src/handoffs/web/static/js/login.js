// The sign-in form: POST /api/v1/auth/session sets the HttpOnly session cookie, then go on.

import { api } from "./api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  if (!email || !password) {
    error.textContent = "Enter your email and password.";
    error.hidden = false;
    (email ? form.elements.password : form.elements.email).focus();
    return;
  }
  const button = form.querySelector("[type=submit]");
  button.disabled = true;
  button.textContent = "Signing in…";
  error.hidden = true;
  try {
    await api("POST", "/api/v1/auth/session", { email, password });
    location.assign(form.dataset.next || "/");
  } catch (failure) {
    error.textContent = failure.status === 401 ? "Wrong email or password." : failure.message;
    error.hidden = false;
    button.disabled = false;
    button.textContent = "Sign in";
    form.elements.password.select();
  }
});
