// The login page's only script: shows why the server sent the browser back
// here (?error=1: wrong key; ?error=code: the one-time link was used or
// expired). Served without a session, like login.html.
(function () {
  'use strict';
  const reason = new URLSearchParams(window.location.search).get('error');
  if (reason === null) return;
  const box = document.getElementById('error');
  box.textContent = reason === 'code'
    ? 'That one-time login link was already used or has expired. Log in with the admin key.'
    : 'That key is not valid. Try again.';
  box.hidden = false;
})();
