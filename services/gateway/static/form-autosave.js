/*
 * form-autosave.js: saves a form in the background after a few seconds without typing.
 *
 * Markup: <form data-autosave="URL"> with an optional [data-autosave-status] element (a polite
 * live region) for "Saved at 10:42". The form's fields are posted as they are (the CSRF token
 * included); the server answers 204 when saved. Without this file the form's own "Save and
 * finish later" button does the same. Submitting the form cancels a pending save.
 * Plain ES2017, no dependencies; load it with `defer`.
 */
(function () {
  'use strict';

  const IDLE_MS = 3000;

  function init(form) {
    const url = form.getAttribute('data-autosave');
    const status = form.querySelector('[data-autosave-status]');
    let timer = null;
    let saving = false;
    let again = false;

    function say(text) {
      if (status) status.textContent = text;
    }

    async function save() {
      timer = null;
      if (saving) {
        again = true;
        return;
      }
      saving = true;
      try {
        const reply = await fetch(url, {
          method: 'POST',
          body: new FormData(form),
          credentials: 'same-origin',
          headers: { 'X-Requested-With': 'autosave' },
        });
        if (reply.status === 204) {
          const time = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
          say(`Saved automatically at ${time}.`);
        } else {
          say(`Not saved automatically: ${(await reply.text()).slice(0, 200)}`);
        }
      } catch (error) {
        say('Not saved automatically (no connection). Use "Save and finish later".');
      } finally {
        saving = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    }

    function schedule() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(save, IDLE_MS);
    }

    form.addEventListener('input', schedule);
    form.addEventListener('change', schedule);
    form.addEventListener('submit', () => {
      if (timer) clearTimeout(timer);
      timer = null;
    });
  }

  function start() {
    document.querySelectorAll('form[data-autosave]').forEach(init);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
